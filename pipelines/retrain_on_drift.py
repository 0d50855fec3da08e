"""The ``retrain-on-drift`` pipeline: compare new data with the training reference; retrain if it drifted."""

from kfp import dsl

from components.drift import drift
from components.ingest import ingest
from pipelines.training import training_pipeline


@dsl.pipeline(
    name="retrain-on-drift", description="Drift check on new data; the training pipeline if drifted."
)
def retrain_on_drift_pipeline(
    current_source: str,
    reference_source: str = "synth",
    synth_images: int = 360,
    imgsz: int = 160,
    epochs: int = 30,
    batch: int = 16,
    min_map50: float = 0.9,
    max_regression: float = 0.0,
    registered_model: str = "nexus-detector",
    deployment: str = "nexus-detector",
    canary_percent: float = 10.0,
    seed: int = 0,
):
    reference = ingest(source=reference_source, synth_images=synth_images, synth_imgsz=imgsz, seed=seed)
    checked = drift(reference=reference.outputs["dataset"], current_path=current_source).set_caching_options(
        False
    )
    with dsl.If(checked.outputs["Output"] == True, name="drifted"):  # noqa: E712 - a KFP condition
        training_pipeline(
            source=current_source, imgsz=imgsz, epochs=epochs, batch=batch, min_map50=min_map50,
            max_regression=max_regression, registered_model=registered_model, deployment=deployment,
            canary_percent=canary_percent, seed=seed,
        )  # fmt: skip
