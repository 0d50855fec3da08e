"""``export``: ONNX (FP32) and INT8 ONNX from trained weights."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Model, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def export(
    weights: Input[Model],
    dataset: Input[Dataset],
    onnx_model: Output[Model],
    int8: bool = True,
    tensorrt: bool = False,
):
    """Write ``model.onnx`` (and ``model-int8.onnx``, calibrated on the dataset) into ``onnx_model``.

    ``tensorrt`` also builds ``model.engine`` (a GPU node with TensorRT; elsewhere the step fails with
    the reason).
    """
    from pathlib import Path

    from nexus.export import ExportConfig, export_model

    formats = ("onnx", "int8") if int8 else ("onnx",)
    if tensorrt:
        formats += ("engine",)
    files = export_model(
        ExportConfig(
            weights=Path(weights.path) / "best.pt",
            out_dir=Path(onnx_model.path),
            formats=formats,
            data=Path(dataset.path),
        )
    ).files
    onnx_model.metadata.update({name: Path(path).name for name, path in files.items()})
