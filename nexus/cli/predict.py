"""``nexus predict``."""

from __future__ import annotations


def predict_command() -> None:
    """Placeholder."""
