"""Compile and run the Kubeflow pipelines in ``pipelines/`` (locally through ``kfp.local``)."""

from __future__ import annotations

import collections
import contextlib
import importlib
import io
import math
import os
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus.errors import NexusError
from nexus.inference.metadata import MAX_IMGSZ

PIPELINES = {
    "training": ("pipelines.training", "training_pipeline"),
    "retrain-on-drift": ("pipelines.retrain_on_drift", "retrain_on_drift_pipeline"),
}


@dataclass(frozen=True)
class PipelineRunResult:
    """Outputs of a local run: task name -> output name -> value or artifact path."""

    name: str
    outputs: dict[str, Any]


def repository_root() -> Path:
    return Path(__file__).resolve().parent.parent


def load_pipeline(name: str):
    if name not in PIPELINES:
        raise NexusError(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINES)}")
    module_name, attribute = PIPELINES[name]
    return getattr(importlib.import_module(module_name), attribute)


def compiled_path(name: str) -> Path:
    return repository_root() / "pipelines" / f"{name}.yaml"


def compile_pipeline(name: str, out: Path | None = None) -> Path:
    """Write the pipeline's IR YAML (checked in under ``pipelines/``)."""
    from kfp import compiler

    target = out or compiled_path(name)
    compiler.Compiler().compile(load_pipeline(name), str(target))
    return target


class PipelineFailed(RuntimeError):
    """A local run failed; ``reason`` is the failing step's own error message, when one was printed."""

    def __init__(self, summary: str, reason: str | None) -> None:
        super().__init__(f"{summary} {reason}" if reason else summary)
        self.summary = summary
        self.reason = reason


# Parameters checked before any step runs (the gate and deploy steps come after minutes of training):
# name -> (test, what is allowed). NaN would make every ``map50 < min_map50`` false and pass the gate.
_RULES: dict[str, tuple[Any, str]] = {
    "epochs": (lambda v: v >= 1, "at least 1"),
    "tune_epochs": (lambda v: v >= 1, "at least 1"),
    "tune_trials": (lambda v: v >= 0, "0 (no tuning) or more"),
    "batch": (lambda v: v >= 1, "at least 1"),
    "imgsz": (
        lambda v: 32 <= v <= MAX_IMGSZ and v % 32 == 0,
        f"a multiple of 32 between 32 and {MAX_IMGSZ}, e.g. 160",
    ),
    "seed": (lambda v: v >= 0, "0 or more"),
    "min_map50": (lambda v: 0.0 <= v <= 1.0, "between 0 and 1"),
    "max_regression": (lambda v: -1.0 <= v <= 1.0, "between -1 and 1 (mAP50 it may lose to the champion)"),
    "canary_percent": (lambda v: 0.0 < v <= 100.0, "above 0 and at most 100"),
    "deploy_target": (lambda v: v in ("local", "kserve"), "'local' or 'kserve'"),
}

_ERROR_LINE = re.compile(r"^\s*(?:[\w.]+\.)?(\w*(?:Error|Exception|Failed)):\s+(.+)$")


class _TailWriter(io.TextIOBase):
    """Pass the steps' output through and keep its last lines, to find the error that stopped a step."""

    def __init__(self, target: Any, keep: int = 400) -> None:
        self.target = target
        self.lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._partial = ""

    def write(self, text: str) -> int:
        self.target.write(text)
        parts = (self._partial + text).split("\n")
        self._partial = parts.pop()
        self.lines.extend(parts)
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def reason(self) -> str | None:
        """The last ``SomeError: message`` line of a traceback printed by a step."""
        for line in reversed([*self.lines, self._partial]):
            match = _ERROR_LINE.match(line)
            if match and match.group(1) != "RuntimeError":
                return f"{match.group(1)}: {match.group(2).strip()}"
        return None


def coerce_arguments(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Check names against the pipeline's parameters and convert values to their declared types.

    Raises:
        NexusError: an unknown parameter, a value that is not of the parameter's type, a NaN or
            infinite float, or a value outside what the parameter allows (e.g. ``epochs=0``).
    """
    inputs = load_pipeline(name).component_spec.inputs or {}
    converters = {"Float": float, "Integer": int, "String": str, "Boolean": bool}
    coerced: dict[str, Any] = {}
    for key, value in arguments.items():
        if key not in inputs:
            raise NexusError(f"pipeline {name!r} has no parameter {key!r}; parameters: {', '.join(inputs)}")
        kind = inputs[key].type
        if kind == "Boolean" and isinstance(value, str) and value.lower() in ("true", "false"):
            value = value.lower() == "true"
        ok = {
            "Float": isinstance(value, int | float) and not isinstance(value, bool),
            "Integer": (isinstance(value, int) and not isinstance(value, bool))
            or (isinstance(value, float) and value.is_integer()),
            "Boolean": isinstance(value, bool),
            "String": value is not None and not isinstance(value, dict | list),
        }.get(kind, True)
        if not ok:
            raise NexusError(f"parameter {key!r} of pipeline {name!r} must be of type {kind}, got {value!r}")
        value = converters[kind](value) if kind in converters else value
        test, allowed = _RULES.get(key, (lambda v: True, "a finite number"))
        if (isinstance(value, float) and not math.isfinite(value)) or not test(value):
            raise NexusError(f"parameter {key!r} of pipeline {name!r} must be {allowed}, got {value!r}")
        coerced[key] = value
    return coerced


def run_pipeline_locally(
    name: str, pipeline_root: Path, arguments: dict[str, Any] | None = None, enable_caching: bool = True
) -> Any:
    """Run with ``kfp.local.SubprocessRunner`` in the installed environment (no per-step installs).

    With caching on, a step whose component and inputs did not change since an earlier run under the
    same ``pipeline_root`` reuses that run's outputs, so an interrupted run resumes where it stopped.
    """
    from kfp import local

    pipeline = load_pipeline(name)
    arguments = coerce_arguments(name, arguments or {})
    pipeline_root.mkdir(parents=True, exist_ok=True)
    scratch = pipeline_root / ".tmp"
    scratch.mkdir(exist_ok=True)
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(scratch)  # each task leaves a temp dir: keep them with the run
    try:
        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(pipeline_root),
            enable_caching=enable_caching,
        )
        with warnings.catch_warnings():
            # The components name the project's image; locally they run in this same environment.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            with contextlib.redirect_stdout(_TailWriter(sys.stdout)) as tail:
                try:
                    return pipeline(**arguments)
                except RuntimeError as error:
                    raise PipelineFailed(str(error).splitlines()[0], tail.reason()) from error
    finally:
        if previous is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous


def submit_pipeline(
    name: str, host: str, arguments: dict[str, Any] | None = None, experiment: str = "nexus"
) -> str:
    """Submit the compiled pipeline to a Kubeflow Pipelines host; returns the run id.

    Raises:
        NexusError: the host cannot be reached or refused the run.
    """
    import kfp

    package = compiled_path(name)
    arguments = coerce_arguments(name, arguments or {})
    try:
        client = kfp.Client(host=host)
        run = client.create_run_from_pipeline_package(
            str(package), arguments=arguments or {}, experiment_name=experiment, run_name=f"{name}-run"
        )
    except Exception as error:  # kfp raises urllib3, ApiException, ValueError...
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise NexusError(f"cannot submit {name!r} to Kubeflow at {host}: {first[:300]}") from error
    return str(run.run_id)


def save_metrics(metrics: Any) -> None:
    """Also write a KFP ``Metrics`` artifact's values into its file (JSON).

    KFP keeps metrics in the artifact's metadata only; ``kfp.local``'s cache treats an output whose
    file does not exist as a miss, so without the file no step with metrics would ever be cached.
    """
    import json

    path = Path(metrics.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(metrics.metadata), indent=2, default=str), encoding="utf-8")
