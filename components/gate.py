"""``gate``: pass a new model only if it reaches the minimum mAP50 and does not lose to the champion."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def gate(
    onnx_model: Input[Model],
    dataset: Input[Dataset],
    map50: float,
    metrics: Output[Metrics],
    min_map50: float = 0.9,
    max_regression: float = 0.0,
    registered_model: str = "nexus-detector",
) -> bool:
    """Compare with the current champion evaluated on the same validation split.

    Passes when ``map50 >= min_map50`` and ``map50 >= champion_map50 - max_regression`` (always the
    second when no champion exists yet). The reason is printed and logged as the ``decision`` metric
    (1 passed, 0 stopped).
    """
    import tempfile
    from pathlib import Path

    from nexus.evaluation.model_eval import evaluate_model
    from nexus.pipelines import save_metrics
    from nexus.registry import CHAMPION, ModelRegistry

    def decision(passed: bool, reason: str) -> bool:
        metrics.log_metric("decision", float(passed))
        save_metrics(metrics)
        print(f"gate: {'pass' if passed else 'stop'}: {reason}")
        return passed

    metrics.log_metric("challenger_mAP50", map50)
    if map50 < min_map50:
        reason = f"mAP50 {map50:.4f} is below the minimum {min_map50:.4f}"
        return decision(False, reason)
    registry = ModelRegistry(name=registered_model)
    champion = registry.get(CHAMPION)
    if champion is None:
        return decision(True, f"mAP50 {map50:.4f} >= {min_map50:.4f}; no champion yet")
    folder = registry.download(CHAMPION, Path(tempfile.mkdtemp(prefix="nexus-champion-")))
    champion_map50 = float(evaluate_model(next(folder.rglob("model.onnx")), Path(dataset.path)).map50)
    metrics.log_metric("champion_mAP50", champion_map50)
    if map50 < champion_map50 - max_regression:
        reason = f"mAP50 {map50:.4f} is worse than champion v{champion.version} ({champion_map50:.4f})"
        return decision(False, reason)
    return decision(True, f"mAP50 {map50:.4f} vs champion v{champion.version} {champion_map50:.4f}")
