"""Hyperparameter tuning: an Optuna study of short YOLO trainings, pruned per epoch, nested in MLflow.

Example:
    >>> from nexus.tuning import TuneConfig, tune
    >>> result = tune(TuneConfig(data=Path("data/shapes"), trials=10, epochs=5))  # doctest: +SKIP
    >>> sorted(result.best_params)
    ['fliplr', 'hsv_h', 'hsv_s', 'hsv_v', 'lr0', 'momentum', 'mosaic', 'weight_decay']
"""

from nexus.tuning.config import METRICS, TuneConfig, TuneResult
from nexus.tuning.space import (
    DEFAULT_SEARCH_SPACE,
    Choice,
    FloatRange,
    IntRange,
    TuneConfigError,
    parse_search_space,
)
from nexus.tuning.study import tune

__all__ = [
    "DEFAULT_SEARCH_SPACE",
    "METRICS",
    "Choice",
    "FloatRange",
    "IntRange",
    "TuneConfig",
    "TuneConfigError",
    "TuneResult",
    "parse_search_space",
    "tune",
]
