"""``evaluate``: COCO metrics of the exported model into KFP Metrics and an HTML report."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def evaluate(
    onnx_model: Input[Model], dataset: Input[Dataset], metrics: Output[Metrics], report: Output[HTML]
) -> float:
    """Evaluate ``model.onnx`` on the validation split; returns mAP50 for the gate."""
    import base64
    import tempfile
    from pathlib import Path

    from nexus.evaluation.model_eval import evaluate_model
    from nexus.pipelines import save_metrics

    plots = Path(tempfile.mkdtemp(prefix="nexus-eval-"))
    result = evaluate_model(Path(onnx_model.path) / "model.onnx", Path(dataset.path), plots_dir=plots)
    for name, value in result.box.coco.stats.items():
        metrics.log_metric(name, float(value))
    images = "".join(
        f'<h3>{png.stem}</h3><img src="data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()}"/>'
        for png in result.plots
    )
    rows = "".join(
        f"<tr><td>{r.name}</td><td>{r.instances}</td><td>{r.ap50:.3f}</td><td>{r.ap50_95:.3f}</td></tr>"
        for r in result.box.per_class
    )
    Path(report.path).write_text(
        f"<html><body><h2>mAP50 {result.map50:.4f} mAP50-95 {result.map50_95:.4f}</h2>"
        f"<table><tr><th>class</th><th>instances</th><th>AP50</th><th>AP50-95</th></tr>{rows}</table>"
        f"{images}</body></html>"
    )
    save_metrics(metrics)
    return float(result.map50)
