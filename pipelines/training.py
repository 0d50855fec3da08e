"""The ``training`` pipeline: ingest -> tune -> train -> export -> evaluate -> gate -> register -> deploy.

The gate passes a model only if it reaches ``min_map50`` and is not worse than the current champion
(evaluated on the same validation split); only then is it registered as the MLflow ``challenger``
and deployed as a canary (the first model ever becomes the champion). Steps that read or change the
registry or the deployment are never served from the cache.
"""

from kfp import dsl

from components.deploy import deploy
from components.evaluate import evaluate
from components.export import export
from components.gate import gate
from components.ingest import ingest
from components.register import register
from components.train import train
from components.tune import tune


@dsl.pipeline(name="training", description="Dataset to a gated, registered, canary-deployed detector.")
def training_pipeline(
    source: str = "synth",
    synth_images: int = 360,
    imgsz: int = 160,
    epochs: int = 30,
    batch: int = 16,
    architecture: str = "yolov8n.yaml",
    tune_trials: int = 0,
    tune_epochs: int = 5,
    min_map50: float = 0.9,
    max_regression: float = 0.0,
    registered_model: str = "nexus-detector",
    deployment: str = "nexus-detector",
    canary_percent: float = 10.0,
    deploy_target: str = "local",
    kserve_transformer: bool = False,
    tensorrt: bool = False,
    seed: int = 0,
):
    ingested = ingest(source=source, synth_images=synth_images, synth_imgsz=imgsz, seed=seed)
    dataset = ingested.outputs["dataset"]
    tuned = tune(
        dataset=dataset, trials=tune_trials, epochs=tune_epochs, imgsz=imgsz, batch=batch,
        architecture=architecture, seed=seed,
    )  # fmt: skip
    trained = train(
        dataset=dataset, architecture=architecture, epochs=epochs, imgsz=imgsz, batch=batch, seed=seed,
        hyperparameters=tuned.outputs["Output"],
    )  # fmt: skip
    exported = export(weights=trained.outputs["model"], dataset=dataset, tensorrt=tensorrt)
    evaluated = evaluate(onnx_model=exported.outputs["onnx_model"], dataset=dataset)
    gated = gate(
        onnx_model=exported.outputs["onnx_model"], dataset=dataset, map50=evaluated.outputs["Output"],
        min_map50=min_map50, max_regression=max_regression, registered_model=registered_model,
    ).set_caching_options(False)  # fmt: skip
    with dsl.If(gated.outputs["Output"] == True, name="quality-gate"):  # noqa: E712 - a KFP condition
        registered = register(
            onnx_model=exported.outputs["onnx_model"], dataset=dataset,
            evaluation_report=evaluated.outputs["report"], map50=evaluated.outputs["Output"],
            training_run_id=trained.outputs["Output"], pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            registered_model=registered_model,
        ).set_caching_options(False)  # fmt: skip
        deploy(
            version=registered.output, deployment=deployment, canary_percent=canary_percent,
            target=deploy_target, registered_model=registered_model, kserve_transformer=kserve_transformer,
        ).set_caching_options(False)  # fmt: skip
