"""Lineage of a model version: where its data, code, training run, pipeline run and evaluation came from."""

from __future__ import annotations

import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path

TAG_PREFIX = "nexus."


def git_commit(repository: str | Path | None = None) -> str:
    """The commit checked out in ``repository`` (the project's by default), ``unknown`` outside git.

    Example:
        >>> len(git_commit()) in (40, 7)
        True
    """
    folder = Path(repository) if repository else Path(__file__).resolve().parent
    try:
        result = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return result.stdout.strip() if result.returncode == 0 and result.stdout.strip() else "unknown"


@dataclass(frozen=True)
class Lineage:
    """What a registered model version was made from; stored as ``nexus.*`` tags on the version.

    Attributes:
        training_run_id: the MLflow run that trained the weights (the version's parent run).
        dataset_dvc_hash: DVC hash (``<md5>.dir``) of the dataset it was trained and evaluated on.
        git_commit: commit of the code that trained it.
        pipeline_run: the Kubeflow pipeline run (job name) that produced it, if any.
        evaluation_report: URI of the evaluation report (HTML) of this model.
        metrics: evaluation metrics, e.g. ``{"mAP50": 0.93}``.

    Example:
        >>> Lineage(training_run_id="abc", metrics={"mAP50": 0.9}).to_tags()["nexus.metric.mAP50"]
        '0.9'
    """

    training_run_id: str = ""
    dataset_dvc_hash: str = ""
    git_commit: str = ""
    pipeline_run: str = ""
    evaluation_report: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    def to_tags(self) -> dict[str, str]:
        tags = {f"{TAG_PREFIX}{k}": str(v) for k, v in asdict(self).items() if k != "metrics" and v}
        tags.update({f"{TAG_PREFIX}metric.{k}": repr(float(v)) for k, v in self.metrics.items()})
        return tags

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> Lineage:
        metric_prefix = f"{TAG_PREFIX}metric."
        metrics = {
            k.removeprefix(metric_prefix): float(v) for k, v in tags.items() if k.startswith(metric_prefix)
        }
        fields = {
            name: tags.get(f"{TAG_PREFIX}{name}", "")
            for name in (
                "training_run_id",
                "dataset_dvc_hash",
                "git_commit",
                "pipeline_run",
                "evaluation_report",
            )
        }
        return cls(metrics=metrics, **fields)
