"""The hyperparameter search space: ranges and choices of Ultralytics train arguments (no Ultralytics import).

A space maps an Ultralytics train argument (``lr0``, ``momentum``, ``mosaic``, ...) to a
``FloatRange``, an ``IntRange`` or a ``Choice``. ``DEFAULT_SEARCH_SPACE`` holds the usual YOLO
optimizer and augmentation ranges; ``parse_search_space`` reads a space from JSON-like data.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from nexus.errors import NexusError
from nexus.training.config import RESERVED_EXTRA_KEYS


class TuneConfigError(NexusError, ValueError):
    """A tuning setting is invalid; the message names the field and what to change (CLI exit 2)."""


@dataclass(frozen=True)
class FloatRange:
    """Sample a float in ``[low, high]``; ``log=True`` samples uniformly in log space (``low > 0``).

    Example:
        >>> FloatRange(1e-4, 1e-1, log=True).describe()
        'float 0.0001..0.1 (log)'
    """

    low: float
    high: float
    log: bool = False

    def describe(self) -> str:
        return f"float {self.low:g}..{self.high:g}" + (" (log)" if self.log else "")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "float", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class IntRange:
    """Sample an integer in ``[low, high]`` (both included); ``log=True`` needs ``low >= 1``.

    Example:
        >>> IntRange(0, 5).describe()
        'int 0..5'
    """

    low: int
    high: int
    log: bool = False

    def describe(self) -> str:
        return f"int {self.low}..{self.high}" + (" (log)" if self.log else "")

    def to_dict(self) -> dict[str, Any]:
        return {"type": "int", "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class Choice:
    """Pick one of ``choices`` (strings, numbers or booleans), e.g. ``Choice(("SGD", "AdamW"))``.

    Example:
        >>> Choice(("SGD", "AdamW")).describe()
        "one of 'SGD', 'AdamW'"
    """

    choices: tuple[Any, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(map(repr, self.choices))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "choice", "choices": list(self.choices)}


ParamSpec = FloatRange | IntRange | Choice

# Usual YOLO ranges (optimizer and colour/flip/mosaic augmentation); Ultralytics' defaults lie inside.
DEFAULT_SEARCH_SPACE: dict[str, ParamSpec] = {
    "lr0": FloatRange(1e-4, 1e-1, log=True),
    "momentum": FloatRange(0.6, 0.98),
    "weight_decay": FloatRange(0.0, 1e-3),
    "hsv_h": FloatRange(0.0, 0.1),
    "hsv_s": FloatRange(0.0, 0.9),
    "hsv_v": FloatRange(0.0, 0.9),
    "fliplr": FloatRange(0.0, 1.0),
    "mosaic": FloatRange(0.0, 1.0),
}

# Where a value makes sense for Ultralytics (which refuses lr0, weight_decay, ... above 1):
# (lowest, highest, lowest allowed itself).
_UNIT = (0.0, 1.0, True)
_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "lr0": (0.0, 1.0, False),
    "lrf": (0.0, 1.0, False),
    "momentum": (0.0, 1.0, True),
    "weight_decay": _UNIT,
    "warmup_epochs": (0.0, math.inf, True),
    "warmup_momentum": _UNIT,
    "warmup_bias_lr": _UNIT,
    "nbs": (1.0, math.inf, True),
    "close_mosaic": (0.0, math.inf, True),
    "mask_ratio": (1.0, math.inf, True),
    "dropout": _UNIT,
    "erasing": _UNIT,
    "box": (0.0, math.inf, True),
    "cls": (0.0, math.inf, True),
    "dfl": (0.0, math.inf, True),
    "degrees": (-180.0, 180.0, True),
    "translate": _UNIT,
    "scale": (0.0, math.inf, True),
    "shear": (-180.0, 180.0, True),
    "perspective": (0.0, 0.001, True),
    **{name: _UNIT for name in ("hsv_h", "hsv_s", "hsv_v", "flipud", "fliplr", "bgr", "mosaic", "mixup")},
    **{name: _UNIT for name in ("cutmix", "copy_paste")},
}
# Ultralytics' optimizer names (``BaseTrainer.build_optimizer``); "auto" picks one by the iterations.
OPTIMIZERS = ("SGD", "Adam", "AdamW", "NAdam", "RAdam", "RMSprop", "Adamax", "MuSGD", "auto")
# Arguments that are not hyperparameters of the model's quality, or that tuning itself controls.
_NOT_TUNABLE = RESERVED_EXTRA_KEYS | {
    "val",
    "plots",
    "save",
    "save_period",
    "cache",
    "amp",
    "time",
    "fraction",
}


@lru_cache(maxsize=1)
def ultralytics_defaults() -> dict[str, Any]:
    """Ultralytics' default train arguments, read from its ``cfg/default.yaml`` without importing it.

    Empty when Ultralytics is not installed.

    Example:
        >>> ultralytics_defaults()["lr0"]  # doctest: +SKIP
        0.01
    """
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / "cfg" / "default.yaml"
    if not path.is_file():
        return {}
    return dict(yaml.safe_load(path.read_text(encoding="utf-8")) or {})


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TuneConfigError(f"{where}={value!r} must be a finite number")
    return float(value)


def check_param(name: str, spec: Any, *, field: str = "search_space") -> None:
    """Raise ``TuneConfigError`` naming ``field[name]`` if ``spec`` cannot be sampled for ``name``.

    Example:
        >>> check_param("lr0", FloatRange(0.1, 0.01))
        Traceback (most recent call last):
        ...
        nexus.tuning.space.TuneConfigError: search_space['lr0']: low=0.1 must be below high=0.01; swap them
    """
    where = f"{field}[{name!r}]"
    known = ultralytics_defaults()
    if not isinstance(name, str) or not name:
        raise TuneConfigError(f"{field} keys must be Ultralytics train argument names such as 'lr0'")
    if name in _NOT_TUNABLE:
        raise TuneConfigError(
            f"{where}: {name!r} cannot be tuned (a setting of the run, not a hyperparameter); remove it "
            f"from {field}"
        )
    if known and name not in known:
        raise TuneConfigError(
            f"{where}: {name!r} is not an Ultralytics train argument; use one such as lr0, momentum, "
            "weight_decay, mosaic (see https://docs.ultralytics.com/modes/train/#train-settings)"
        )
    default = known.get(name)
    integer = isinstance(default, int) and not isinstance(default, bool)  # nbs, close_mosaic, ...
    if isinstance(spec, Choice):
        if not isinstance(spec.choices, tuple) or not spec.choices:
            raise TuneConfigError(f"{where}: choices must be a non-empty tuple, e.g. ('SGD', 'AdamW')")
        for choice in spec.choices:
            if choice is not None and not isinstance(choice, str | int | float | bool):
                raise TuneConfigError(f"{where}: choice {choice!r} must be a string, number or boolean")
        if len(set(spec.choices)) != len(spec.choices):
            raise TuneConfigError(f"{where}: choices {list(spec.choices)} repeat a value; list each once")
        if isinstance(default, bool) and not all(isinstance(c, bool) for c in spec.choices):
            raise TuneConfigError(f"{where}: {name} is true or false; use Choice((True, False))")
        if name == "optimizer":
            unknown = [c for c in spec.choices if c not in OPTIMIZERS]
            if unknown:
                raise TuneConfigError(
                    f"{where}: {unknown[0]!r} is not an Ultralytics optimizer; use {', '.join(OPTIMIZERS)}"
                )
        if name in _BOUNDS or integer:
            for choice in spec.choices:
                value = _number(choice, f"{where} choice")
                if integer and not value.is_integer():
                    raise TuneConfigError(f"{where}: choice {choice!r} must be a whole number for {name}")
                _check_bounds(name, value, value, where, "drop that choice")
        return
    if not isinstance(spec, FloatRange | IntRange):
        raise TuneConfigError(
            f"{where}={spec!r} must be a FloatRange(low, high), IntRange(low, high) or Choice((...))"
        )
    if isinstance(default, bool):
        raise TuneConfigError(f"{where}: {name} is true or false; use Choice((True, False))")
    low, high = _number(spec.low, f"{where}.low"), _number(spec.high, f"{where}.high")
    if integer and isinstance(spec, FloatRange):
        raise TuneConfigError(
            f"{where}: {name} takes whole numbers (Ultralytics refuses 64.5); use IntRange({spec.low!r}, "
            f'{spec.high!r}) or {{"type": "int"}}'
        )
    if isinstance(spec, IntRange) and not (float(spec.low).is_integer() and float(spec.high).is_integer()):
        raise TuneConfigError(f"{where}: IntRange bounds {spec.low!r}..{spec.high!r} must be integers")
    if low >= high:
        hint = "swap them" if low > high else "to fix a value, pass it in extra instead"
        raise TuneConfigError(f"{where}: low={spec.low!r} must be below high={spec.high!r}; {hint}")
    if spec.log and low <= 0:
        raise TuneConfigError(
            f"{where}: a log range needs low > 0, got low={spec.low!r}; raise low or drop log"
        )
    _check_bounds(name, low, high, where, "narrow the range")


def _check_bounds(name: str, low: float, high: float, where: str, fix: str) -> None:
    if name not in _BOUNDS:
        return
    lowest, highest, inclusive = _BOUNDS[name]
    too_low = low < lowest or (low == lowest and not inclusive)
    if too_low or high > highest:
        interval = f"{'[' if inclusive else '('}{lowest:g}, {highest:g}]"
        shown = f"{low:g}" if low == high else f"{low:g}..{high:g}"
        raise TuneConfigError(f"{where}: {shown} leaves the valid values of {name} {interval}; {fix}")


def check_fixed(values: Mapping[str, Any], *, field: str = "extra") -> None:
    """Raise ``TuneConfigError`` for a fixed train argument Ultralytics does not know or would refuse.

    Checked up front: otherwise every trial fails and is recorded as FAIL in the study.

    Example:
        >>> check_fixed({"mixup": 0.1, "plots": False})  # {"mixup": 3.0} raises: mixup lies in [0, 1]
    """
    known = ultralytics_defaults()
    for name, value in values.items():
        where = f"{field}[{name!r}]"
        if known and name not in known:
            raise TuneConfigError(
                f"{where}: {name!r} is not an Ultralytics train argument (see "
                "https://docs.ultralytics.com/modes/train/#train-settings); remove it"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise TuneConfigError(f"{where}={value!r} must be a finite number")
        if name == "optimizer" and value not in OPTIMIZERS:
            raise TuneConfigError(
                f"{where}: {value!r} is not an Ultralytics optimizer; use {', '.join(OPTIMIZERS)}"
            )
        if name in _BOUNDS:
            number = _number(value, where)
            _check_bounds(name, number, number, where, "change it")


def check_search_space(space: Any, *, field: str = "search_space") -> dict[str, ParamSpec]:
    """Check every entry of ``space`` (see ``check_param``) and return it as a plain dict.

    Example:
        >>> sorted(check_search_space({"lr0": FloatRange(1e-4, 1e-1, log=True)}))
        ['lr0']
    """
    if not isinstance(space, Mapping):
        raise TuneConfigError(
            f"{field} must be a mapping of argument name to FloatRange/IntRange/Choice, e.g. "
            "{'lr0': FloatRange(1e-4, 1e-1, log=True)}"
        )
    for name, spec in space.items():
        check_param(name, spec, field=field)
    return dict(space)


def parse_search_space(data: Mapping[str, Any]) -> dict[str, ParamSpec]:
    """Build a space from JSON-like data and check it.

    Each value is ``{"low": L, "high": H, "log": bool, "type": "float" | "int"}`` (``type`` defaults to
    float), ``{"choices": [...]}``, or a short list ``[L, H]`` / ``[L, H, "log"]``.

    Example:
        >>> parse_search_space({"lr0": [1e-4, 1e-1, "log"], "optimizer": {"choices": ["SGD", "AdamW"]}})
        {'lr0': FloatRange(low=0.0001, high=0.1, log=True), 'optimizer': Choice(choices=('SGD', 'AdamW'))}
    """
    if not isinstance(data, Mapping):
        raise TuneConfigError(
            'search space must be a JSON object such as {"lr0": {"low": 0.0001, "high": 0.1, "log": true}}'
        )
    space: dict[str, ParamSpec] = {}
    for name, raw in data.items():
        where = f"search_space[{name!r}]"
        if isinstance(raw, list) and len(raw) in (2, 3):
            if len(raw) == 3 and raw[2] != "log":
                raise TuneConfigError(f'{where}={raw!r}: the third item may only be "log"')
            raw = {"low": raw[0], "high": raw[1], "log": len(raw) == 3}
        if not isinstance(raw, Mapping):
            raise TuneConfigError(
                f'{where}={raw!r} must be {{"low": L, "high": H}}, {{"choices": [...]}} or [L, H, "log"]'
            )
        unknown = sorted(set(raw) - {"type", "low", "high", "log", "choices"})
        if unknown:
            raise TuneConfigError(f"{where} has unknown keys {unknown}; use type, low, high, log or choices")
        kind = raw.get("type", "choice" if "choices" in raw else "float")
        if kind == "choice":
            choices = raw.get("choices")
            if not isinstance(choices, list):
                raise TuneConfigError(f'{where}: "choices" must be a list, e.g. ["SGD", "AdamW"]')
            space[name] = Choice(tuple(choices))
        elif kind in ("float", "int"):
            if "low" not in raw or "high" not in raw:
                raise TuneConfigError(f'{where} needs both "low" and "high"')
            log = raw.get("log", False)
            if not isinstance(log, bool):
                raise TuneConfigError(f'{where}: "log" must be true or false, got {log!r}')
            if kind == "int":
                space[name] = IntRange(raw["low"], raw["high"], log=log)
            else:
                space[name] = FloatRange(raw["low"], raw["high"], log=log)
        else:
            raise TuneConfigError(f'{where}: "type" must be "float", "int" or "choice", got {kind!r}')
    return check_search_space(space)


def suggest(trial: Any, name: str, spec: ParamSpec) -> Any:
    """Ask an Optuna ``trial`` for a value of ``name`` from ``spec``.

    Example:
        >>> suggest(trial, "lr0", FloatRange(1e-4, 1e-1, log=True))  # doctest: +SKIP
        0.0031
    """
    if isinstance(spec, Choice):
        return trial.suggest_categorical(name, list(spec.choices))
    if isinstance(spec, IntRange):
        return trial.suggest_int(name, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(name, float(spec.low), float(spec.high), log=spec.log)


def contains(spec: ParamSpec, value: Any) -> bool:
    """Whether ``value`` is a value ``spec`` can produce.

    Example:
        >>> contains(FloatRange(0.6, 0.98), 0.937), contains(Choice(("SGD",)), "Adam")
        (True, False)
    """
    if isinstance(spec, Choice):
        return value in spec.choices
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(spec, IntRange) and not float(value).is_integer():
        return False
    return spec.low <= value <= spec.high
