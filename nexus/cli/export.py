"""``nexus export``."""

from __future__ import annotations


def export_command() -> None:
    """Placeholder."""
