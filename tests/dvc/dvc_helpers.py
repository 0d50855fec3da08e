"""Helpers of the DVC tests (a uniquely named module: conftest modules are not importable by name)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from nexus.datasets.versioning import run_dvc

REPO = Path(__file__).resolve().parents[2]
# The files a clone of the repository carries that DVC reads (what git would check out).
DVC_FILES = (
    ".dvc/config",
    ".dvc/.gitignore",
    ".dvcignore",
    ".gitignore",
    "data.dvc",
    "dvc.yaml",
    "params.yaml",
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "nexus-test",
    "GIT_AUTHOR_EMAIL": "nexus-test@example.invalid",
    "GIT_COMMITTER_NAME": "nexus-test",
    "GIT_COMMITTER_EMAIL": "nexus-test@example.invalid",
    "GIT_CONFIG_NOSYSTEM": "1",
}


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


def dvc(*args: str, cwd: Path) -> str:
    """Run ``dvc ARGS`` in ``cwd`` and return its output; fail the test with DVC's output otherwise."""
    result = run_dvc(list(args), cwd)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def clone(origin: Path, target: Path) -> Path:
    """A fresh clone: no data, no DVC cache, only what git carries."""
    git("clone", "-q", str(origin), str(target), cwd=origin.parent)
    return target


def same_files(left: Path, right: Path) -> bool:
    """Both folders hold the same relative file names with the same bytes."""
    names = sorted(p.relative_to(left) for p in left.rglob("*") if p.is_file())
    if names != sorted(p.relative_to(right) for p in right.rglob("*") if p.is_file()):
        return False
    return all((left / n).read_bytes() == (right / n).read_bytes() for n in names)
