"""``nexus eval``: ``nexus eval MODEL --data DIR`` or ``nexus eval coco --gt GT --dt DT``."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from nexus.cli import eval_coco, eval_model, eval_mot


class _DefaultToModelGroup(TyperGroup):
    """Treat ``nexus eval <something that is not a subcommand>`` as ``nexus eval model <something>``."""

    def resolve_command(self, ctx: Any, args: list[str]):  # type: ignore[override]
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["model", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_DefaultToModelGroup,
    help="Evaluate a model on a dataset, or COCO result files against ground truth.",
    no_args_is_help=True,
)
app.command("model", help="Evaluate MODEL on a dataset's split (COCO mAP, per-class AP, plots).")(
    eval_model.eval_model_command
)
app.command("coco", help="COCO metrics of a detections JSON against a ground-truth JSON.")(
    eval_coco.eval_coco_command
)
app.command("mot", help="MOTA, IDF1 and HOTA of MOTChallenge tracks against ground truth.")(
    eval_mot.eval_mot_command
)
