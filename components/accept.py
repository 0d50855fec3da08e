"""``accept``: record that a model passed the quality gate (registration lands here next)."""

from kfp import dsl
from kfp.dsl import Input, Model, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE)
def accept(onnx_model: Input[Model], map50: float, accepted: Output[Model]):
    """Copy the gated model into ``accepted`` with its mAP50 in the metadata."""
    import shutil

    shutil.copytree(onnx_model.path, accepted.path)
    accepted.metadata.update({"mAP50": map50, **onnx_model.metadata})
