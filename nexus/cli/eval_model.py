"""``nexus eval MODEL``."""

from __future__ import annotations


def eval_model_command() -> None:
    """Placeholder until the inference module lands."""
