"""``tune``: Optuna hyperparameter search on a Dataset artifact; the best params as JSON for ``train``."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def tune(
    dataset: Input[Dataset],
    metrics: Output[Metrics],
    trials: int = 0,
    epochs: int = 3,
    imgsz: int = 160,
    batch: int = 16,
    architecture: str = "yolov8n.yaml",
    seed: int = 0,
    device: str = "cpu",
    nominal_batch: int = 16,
) -> str:
    """Run ``trials`` trials of ``epochs`` epochs; return the best hyperparameters as a JSON object.

    ``trials == 0`` (the default) trains nothing and returns ``{}`` (train with the defaults), as
    does a study whose trials were all pruned. Each run is a fresh study (seeded), kept in a
    temporary journal; the trials are nested MLflow runs under one parent run. ``nominal_batch``
    (Ultralytics' ``nbs``) is fixed for every trial, as ``train`` uses it.
    """
    import json
    import tempfile
    from pathlib import Path

    from nexus.pipelines import save_metrics
    from nexus.tuning import TuneConfig
    from nexus.tuning import tune as run_study

    config = TuneConfig(
        data=Path(dataset.path),
        architecture=architecture,
        trials=trials,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        device=device,
        seed=seed,
        study_name="pipeline",
        storage=Path(tempfile.mkdtemp(prefix="nexus-tune-")) / "optuna.journal",
        extra={"plots": False, "nbs": nominal_batch},
    )
    result = run_study(config, progress=False)
    metrics.log_metric("trials_complete", result.n_complete)
    metrics.log_metric("trials_pruned", result.n_pruned)
    if result.best_value is not None:
        metrics.log_metric(f"best_{result.metric}", float(result.best_value))
    metrics.metadata["mlflow_parent_run_id"] = result.mlflow_parent_run_id or ""
    save_metrics(metrics)
    if result.best_trial is None:
        return "{}"
    return json.dumps(result.best_params, sort_keys=True)
