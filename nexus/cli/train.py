"""``nexus train``."""

from __future__ import annotations


def train_command() -> None:
    """Placeholder."""
