"""The ``training`` pipeline: ingest -> train -> export -> evaluate -> gate on mAP50 -> accept."""

from kfp import dsl

from components.accept import accept
from components.evaluate import evaluate
from components.export import export
from components.ingest import ingest
from components.train import train


@dsl.pipeline(name="training", description="Dataset to an evaluated, gated ONNX/INT8 model.")
def training_pipeline(
    source: str = "synth",
    synth_images: int = 360,
    imgsz: int = 160,
    epochs: int = 30,
    batch: int = 16,
    architecture: str = "yolov8n.yaml",
    min_map50: float = 0.9,
    seed: int = 0,
):
    ingested = ingest(source=source, synth_images=synth_images, synth_imgsz=imgsz, seed=seed)
    trained = train(
        dataset=ingested.outputs["dataset"],
        architecture=architecture,
        epochs=epochs,
        imgsz=imgsz,
        batch=batch,
        seed=seed,
    )
    exported = export(weights=trained.outputs["model"], dataset=ingested.outputs["dataset"])
    evaluated = evaluate(onnx_model=exported.outputs["onnx_model"], dataset=ingested.outputs["dataset"])
    with dsl.If(evaluated.outputs["Output"] >= min_map50, name="map50-gate"):
        accept(onnx_model=exported.outputs["onnx_model"], map50=evaluated.outputs["Output"])
