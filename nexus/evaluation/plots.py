"""PNG plots of a ``DetectionEvaluation``: PR curves, per-class AP bars and the confusion matrix.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no global state, no
display needed), so plotting is safe in servers, threads and tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from nexus.evaluation.detection_metrics import DetectionEvaluation

PLOT_FILES: tuple[str, ...] = ("pr_curve.png", "per_class_ap.png", "confusion_matrix.png")
_MAX_LABELLED_CURVES = 20
_MAX_ANNOTATED_CELLS = 30


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _plot_pr_curves(evaluation: DetectionEvaluation, path: Path) -> None:
    figure = _new_figure(7, 5.5)
    axes = figure.add_subplot()
    curves = evaluation.pr_curves
    label_each = len(curves) <= _MAX_LABELLED_CURVES
    ap50 = {row.class_id: row.ap50 for row in evaluation.per_class}
    for class_id, (recall, precision) in sorted(curves.items()):
        name = evaluation.names.get(class_id, str(class_id))
        label = f"{name} {ap50.get(class_id, 0.0):.3f}" if label_each else None
        axes.plot(
            recall,
            precision,
            linewidth=1,
            alpha=0.8 if label_each else 0.4,
            color=None if label_each else "grey",
            label=label,
        )
    if curves:
        mean = np.mean([precision for _, precision in curves.values()], axis=0)
        recall = next(iter(curves.values()))[0]
        axes.plot(
            recall,
            mean,
            linewidth=3,
            color="tab:blue",
            label=f"all classes {evaluation.coco.stats['AP50']:.3f} mAP@0.5",
        )
        axes.legend(loc="lower left", fontsize="small")
    else:
        axes.text(0.5, 0.5, "no ground truth", ha="center", va="center")
    axes.set(
        xlabel="Recall",
        ylabel="Precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"Precision-recall at IoU 0.50 ({evaluation.coco.iou_type})",
    )
    axes.grid(alpha=0.3)
    figure.savefig(path)


def _plot_per_class_ap(evaluation: DetectionEvaluation, path: Path) -> None:
    rows = [row for row in evaluation.per_class if row.instances > 0]
    figure = _new_figure(8, max(3.0, 0.3 * len(rows) + 1.5))
    axes = figure.add_subplot()
    if rows:
        positions = np.arange(len(rows))
        axes.barh(positions - 0.2, [r.ap50 for r in rows], height=0.4, label="AP@0.5")
        axes.barh(positions + 0.2, [r.ap50_95 for r in rows], height=0.4, label="AP@0.5:0.95")
        axes.set_yticks(positions, [f"{r.name} ({r.instances})" for r in rows])
        axes.invert_yaxis()
        axes.legend(loc="lower right", fontsize="small")
    else:
        axes.text(0.5, 0.5, "no ground truth", ha="center", va="center")
    axes.set(
        xlim=(0, 1),
        xlabel="Average precision",
        title=f"Per-class AP (mAP@0.5 {evaluation.coco.stats['AP50']:.3f}, "
        f"mAP@0.5:0.95 {evaluation.coco.stats['AP']:.3f})",
    )
    axes.grid(axis="x", alpha=0.3)
    figure.savefig(path)


def _plot_confusion_matrix(evaluation: DetectionEvaluation, path: Path) -> None:
    matrix = evaluation.confusion_matrix.astype(np.float64)
    size = len(matrix)
    labels = [evaluation.names.get(i, str(i)) for i in range(size - 1)] + ["background"]
    row_sums = matrix.sum(axis=1, keepdims=True)
    normalized = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
    side = min(4 + 0.45 * size, 24)
    figure = _new_figure(side + 1.5, side)
    axes = figure.add_subplot()
    image = axes.imshow(normalized, cmap="Blues", vmin=0, vmax=1)
    figure.colorbar(image, ax=axes, fraction=0.046, label="share of the true class's row")
    if size <= _MAX_ANNOTATED_CELLS:
        for (i, j), count in np.ndenumerate(evaluation.confusion_matrix):
            if count:
                axes.text(
                    j,
                    i,
                    str(int(count)),
                    ha="center",
                    va="center",
                    fontsize="small",
                    color="white" if normalized[i, j] > 0.5 else "black",
                )
        axes.set_xticks(range(size), labels, rotation=90)
        axes.set_yticks(range(size), labels)
    axes.set(
        xlabel="Predicted",
        ylabel="True",
        title=f"Confusion (conf >= {evaluation.conf_threshold:g}, IoU >= {evaluation.iou_threshold:g})",
    )
    figure.savefig(path)


def write_evaluation_plots(evaluation: DetectionEvaluation, out_dir: Path) -> list[Path]:
    """Write ``pr_curve.png``, ``per_class_ap.png`` and ``confusion_matrix.png`` into ``out_dir``.

    Args:
        evaluation: the result of ``evaluate_detections``.
        out_dir: the folder to write into; created if missing.

    Returns:
        The three paths, in that order.

    Example:
        >>> import tempfile
        >>> from nexus.detections import Detections
        >>> from nexus.evaluation import evaluate_detections
        >>> result = evaluate_detections([Detections(xyxy=[[0, 0, 9, 9]])],
        ...     [Detections(xyxy=[[0, 0, 9, 9]], confidence=[1.0])], {0: "cat"}, [(10, 10)])
        >>> [p.name for p in write_evaluation_plots(result, Path(tempfile.mkdtemp()))]
        ['pr_curve.png', 'per_class_ap.png', 'confusion_matrix.png']
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in PLOT_FILES]
    for draw, path in zip((_plot_pr_curves, _plot_per_class_ap, _plot_confusion_matrix), paths, strict=True):
        draw(evaluation, path)
    return paths
