"""TuneConfig and search-space validation: every bad field is a ValueError that names it."""

from __future__ import annotations

import pytest

from nexus.errors import NexusError
from nexus.tuning import (
    DEFAULT_SEARCH_SPACE,
    Choice,
    FloatRange,
    IntRange,
    TuneConfig,
    TuneConfigError,
    parse_search_space,
)
from nexus.tuning.space import contains, ultralytics_defaults


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"trials": -1}, r"trials=-1 must be >= 0"),
        ({"trials": 2.5}, r"trials=2.5 must be an integer"),
        ({"trials": True}, r"trials=True must be an integer"),
        ({"epochs": 0}, r"epochs=0 must be at least 1"),
        ({"imgsz": 100}, r"imgsz=100 must be a multiple of 32"),
        ({"batch": 0}, r"batch=0"),
        ({"seed": -3}, r"seed=-3"),
        ({"pruner_warmup_epochs": -1}, r"pruner_warmup_epochs=-1"),
        ({"metric": "accuracy"}, r"metric='accuracy' is not known; pass one of mAP50-95"),
        ({"metric": "mask_mAP50-95"}, r"metric='mask_mAP50-95' needs a segment model"),
        ({"pruner": "hyperband"}, r"pruner='hyperband' is not known"),
        ({"pruner": object()}, r"pruner=.* must be 'median', 'none' or an optuna.pruners.BasePruner"),
        ({"study_name": "a/b"}, r"study_name='a/b' must be one folder name"),
        ({"device": "0,1"}, r"device='0,1': a trial trains on one device"),
        ({"device": "gpu"}, r"device='gpu' is not a device"),
        ({"architecture": "yolov8n.pt"}, r"architecture='yolov8n.pt': no such .pt file"),
        ({"architecture": "yolov8n.onnx"}, r"architecture: .*neither an architecture YAML"),
        ({"extra": {"val": False}}, r"extra sets val, which TuneConfig controls"),
        ({"extra": {"epochs": 3}}, r"extra sets epochs"),
        ({"extra": {"lr0": 0.01}}, r"extra fixes lr0, which search_space also tunes"),
        ({"extra": {"foo": 1}}, r"extra\['foo'\]: 'foo' is not an Ultralytics train argument"),
        ({"extra": {"mixup": 3.0}}, r"extra\['mixup'\]: 3 leaves the valid values of mixup \[0, 1\]"),
        ({"extra": {"cls": float("nan")}}, r"extra\['cls'\]=nan must be a finite number"),
        ({"extra": {"optimizer": "adamw"}}, r"extra\['optimizer'\]: 'adamw' is not an Ultralytics optimizer"),
        ({"search_space": {"lr0": FloatRange(0.1, 0.01)}}, r"search_space\['lr0'\]: low=0.1 must be below"),
        ({"search_space": {"lr0": FloatRange(0.01, 0.01)}}, r"search_space\['lr0'\]: .*pass it in extra"),
        ({"search_space": {"lr0": FloatRange(0.0, 0.1, log=True)}}, r"search_space\['lr0'\]: a log range"),
        ({"search_space": {"lr0": FloatRange(0.0, 0.1)}}, r"search_space\['lr0'\]: .*valid values of lr0"),
        ({"search_space": {"momentum": FloatRange(0.5, 1.5)}}, r"search_space\['momentum'\]: .*narrow"),
        ({"search_space": {"fliplr": FloatRange(-0.1, 0.5)}}, r"search_space\['fliplr'\]"),
        ({"search_space": {"lr0": FloatRange(1e-4, float("nan"))}}, r"search_space\['lr0'\].high=nan"),
        ({"search_space": {"warmup_epochs": IntRange(0.5, 3)}}, r"IntRange bounds 0.5..3 must be integers"),
        ({"search_space": {"optimizer": Choice(())}}, r"search_space\['optimizer'\]: choices must be"),
        ({"search_space": {"optimizer": Choice(("SGD", "SGD"))}}, r"repeat a value"),
        ({"search_space": {"epochs": IntRange(1, 5)}}, r"search_space\['epochs'\]: 'epochs' cannot be tuned"),
        ({"search_space": {"val": Choice((True, False))}}, r"search_space\['val'\]: 'val' cannot be tuned"),
        ({"search_space": {"learning_rate": FloatRange(0, 1)}}, r"'learning_rate' is not an Ultralytics"),
        ({"search_space": {"lr0": (1e-4, 1e-1)}}, r"search_space\['lr0'\]=.* must be a FloatRange"),
        ({"search_space": {"lr0": FloatRange(0.01, 2.0)}}, r"0.01..2 leaves the valid values of lr0 \(0, 1"),
        ({"search_space": {"weight_decay": FloatRange(0, 5)}}, r"valid values of weight_decay \[0, 1\]"),
        ({"search_space": {"lr0": Choice(("a", "b"))}}, r"search_space\['lr0'\] choice='a' must be a finite"),
        ({"search_space": {"mosaic": Choice((0.5, 5.0))}}, r"5 leaves .* mosaic \[0, 1\]; drop that choice"),
        ({"search_space": {"optimizer": Choice(("SGD", "Sgd"))}}, r"'Sgd' is not an Ultralytics optimizer"),
        ({"search_space": {"nbs": FloatRange(16, 64)}}, r"nbs takes whole numbers.*IntRange\(16, 64\)"),
        ({"search_space": {"close_mosaic": Choice((0, 2.5))}}, r"choice 2.5 must be a whole number"),
        ({"search_space": {"mask_ratio": IntRange(0, 4)}}, r"0..4 leaves the valid values of mask_ratio"),
        ({"search_space": {"cos_lr": FloatRange(0, 1)}}, r"cos_lr is true or false; use Choice"),
        ({"search_space": {"cos_lr": Choice((0, 1))}}, r"cos_lr is true or false; use Choice"),
        ({"search_space": [("lr0", FloatRange(1e-4, 1e-1))]}, r"search_space must be a mapping"),
        ({"storage": ""}, r"storage='' is empty"),
    ],
)
def test_bad_settings_raise_a_value_error_naming_the_field(tune_dataset, changes, message):
    with pytest.raises(ValueError, match=message) as caught:
        TuneConfig(data=tune_dataset, **changes)
    assert isinstance(caught.value, NexusError)  # the CLI turns it into exit 2


def test_missing_dataset_and_folder_storage_are_named(tmp_path, tune_dataset):
    with pytest.raises(TuneConfigError, match=r"^data: .*nope: dataset not found"):
        TuneConfig(data=tmp_path / "nope")
    with pytest.raises(TuneConfigError, match=r"storage=.* is a folder; pass a file such as"):
        TuneConfig(data=tune_dataset, storage=tmp_path)


def test_defaults_are_valid_and_hold_ultralytics_defaults(tune_dataset):
    from ultralytics.cfg import DEFAULT_CFG_DICT

    config = TuneConfig(data=tune_dataset)
    assert config.data == tune_dataset.resolve() / "dataset.yaml"
    assert config.trials == 20 and config.metric == "mAP50-95" and config.pruner == "median"
    assert config.search_space == DEFAULT_SEARCH_SPACE
    assert config.search_space is not DEFAULT_SEARCH_SPACE  # a copy: changing it leaves the default alone
    assert config.search_space["lr0"] == FloatRange(1e-4, 1e-1, log=True)
    assert config.search_space["momentum"] == FloatRange(0.6, 0.98)
    assert config.search_space["weight_decay"] == FloatRange(0.0, 1e-3)
    assert ultralytics_defaults() == DEFAULT_CFG_DICT  # read from default.yaml without importing
    defaults = config.defaults()
    assert defaults == {name: DEFAULT_CFG_DICT[name] for name in DEFAULT_SEARCH_SPACE}
    assert all(contains(DEFAULT_SEARCH_SPACE[name], value) for name, value in defaults.items())
    assert config.params()["search_space"].startswith('{"lr0": {"type": "float", "low": 0.0001')


def test_a_real_optuna_pruner_and_custom_space_are_accepted(tune_dataset, tmp_path):
    import optuna

    pruner = optuna.pruners.ThresholdPruner(lower=2.0)
    space = {
        "optimizer": Choice(("SGD", "AdamW")),
        "warmup_epochs": IntRange(0, 2),
        "lrf": FloatRange(0.01, 0.5),
        "nbs": IntRange(16, 64),
        "cos_lr": Choice((True, False)),
        "close_mosaic": Choice((0, 5)),
    }
    config = TuneConfig(
        data=tune_dataset,
        pruner=pruner,
        search_space=space,
        storage=str(tmp_path / "s.journal"),
        device="cuda:0",
    )
    assert config.pruner is pruner and config.params()["pruner"] == "ThresholdPruner"
    assert config.storage == tmp_path / "s.journal" and config.device == "0"
    assert config.defaults() == {
        "optimizer": "auto",
        "warmup_epochs": 3.0,
        "lrf": 0.01,
        "nbs": 64,
        "cos_lr": False,
        "close_mosaic": 10,
    }


def test_parse_search_space_short_and_long_forms():
    space = parse_search_space(
        {
            "lr0": [1e-4, 1e-1, "log"],
            "momentum": [0.6, 0.98],
            "warmup_epochs": {"type": "int", "low": 0, "high": 3},
            "optimizer": {"choices": ["SGD", "AdamW"]},
        }
    )
    assert space == {
        "lr0": FloatRange(1e-4, 1e-1, log=True),
        "momentum": FloatRange(0.6, 0.98),
        "warmup_epochs": IntRange(0, 3),
        "optimizer": Choice(("SGD", "AdamW")),
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], r"search space must be a JSON object"),
        ({"lr0": [1e-4, 1e-1, "exp"]}, r"search_space\['lr0'\]=.*third item may only be \"log\""),
        ({"lr0": 0.01}, r"search_space\['lr0'\]=0.01 must be"),
        ({"lr0": {"low": 1e-4}}, r"search_space\['lr0'\] needs both \"low\" and \"high\""),
        ({"lr0": {"low": 1e-4, "high": 0.1, "step": 2}}, r"unknown keys \['step'\]"),
        ({"lr0": {"low": 1e-4, "high": 0.1, "log": "yes"}}, r"\"log\" must be true or false"),
        (
            {"lr0": {"type": "normal", "low": 0, "high": 1}},
            r"\"type\" must be \"float\", \"int\" or \"choice\"",
        ),
        ({"optimizer": {"choices": "SGD"}}, r"\"choices\" must be a list"),
        ({"lr0": [0.1, 0.01]}, r"low=0.1 must be below high=0.01; swap them"),
    ],
)
def test_parse_search_space_rejects_bad_entries(data, message):
    with pytest.raises(TuneConfigError, match=message):
        parse_search_space(data)


def test_a_tuneconfig_error_is_a_value_error_and_a_nexus_error():
    error = TuneConfigError("x")
    assert isinstance(error, ValueError) and isinstance(error, NexusError) and error.exit_code == 2
    assert not issubclass(ValueError, NexusError)
