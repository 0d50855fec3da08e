"""``register``: the gated model becomes an MLflow model version with alias ``challenger`` and lineage."""

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Model

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def register(
    onnx_model: Input[Model],
    dataset: Input[Dataset],
    evaluation_report: Input[HTML],
    map50: float,
    training_run_id: str,
    pipeline_run: str = "",
    registered_model: str = "nexus-detector",
) -> str:
    """Register ``onnx_model`` (idempotent: a re-run returns the same version); returns the version."""
    from pathlib import Path

    from nexus.registry import Lineage, ModelRegistry, git_commit

    dvc_hash = dataset.metadata.get("dvc_hash", "")
    if not dvc_hash:
        from nexus.datasets.versioning import dvc_hash as compute_dvc_hash

        dvc_hash = compute_dvc_hash(Path(dataset.path))
    lineage = Lineage(
        training_run_id=training_run_id,
        dataset_dvc_hash=dvc_hash,
        git_commit=git_commit(),
        pipeline_run=pipeline_run,
        metrics={"mAP50": map50},
    )
    version = ModelRegistry(name=registered_model).register(
        Path(onnx_model.path), lineage, evaluation_report=Path(evaluation_report.path)
    )
    print(f"registered {registered_model} v{version.version} ({version.uri}) as challenger")
    return version.version
