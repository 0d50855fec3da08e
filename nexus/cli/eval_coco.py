"""``nexus eval coco``."""

from __future__ import annotations


def eval_coco_command() -> None:
    """Placeholder until the evaluation module lands."""
