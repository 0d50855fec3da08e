"""Compile and run the Kubeflow pipelines in ``pipelines/`` (locally through ``kfp.local``)."""

from __future__ import annotations

import importlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nexus.errors import NexusError

PIPELINES = {"training": ("pipelines.training", "training_pipeline")}


@dataclass(frozen=True)
class PipelineRunResult:
    """Outputs of a local run: task name -> output name -> value or artifact path."""

    name: str
    outputs: dict[str, Any]


def repository_root() -> Path:
    return Path(__file__).resolve().parent.parent


def load_pipeline(name: str):
    if name not in PIPELINES:
        raise NexusError(f"unknown pipeline {name!r}; choose from {', '.join(PIPELINES)}")
    module_name, attribute = PIPELINES[name]
    return getattr(importlib.import_module(module_name), attribute)


def compiled_path(name: str) -> Path:
    return repository_root() / "pipelines" / f"{name}.yaml"


def compile_pipeline(name: str, out: Path | None = None) -> Path:
    """Write the pipeline's IR YAML (checked in under ``pipelines/``)."""
    from kfp import compiler

    target = out or compiled_path(name)
    compiler.Compiler().compile(load_pipeline(name), str(target))
    return target


def run_pipeline_locally(name: str, pipeline_root: Path, arguments: dict[str, Any] | None = None) -> Any:
    """Run with ``kfp.local.SubprocessRunner`` in the installed environment (no per-step installs)."""
    from kfp import local

    pipeline = load_pipeline(name)
    pipeline_root.mkdir(parents=True, exist_ok=True)
    scratch = pipeline_root / ".tmp"
    scratch.mkdir(exist_ok=True)
    previous = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(scratch)  # each task leaves a temp dir: keep them with the run
    try:
        local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(pipeline_root))
        with warnings.catch_warnings():
            # The components name the project's image; locally they run in this same environment.
            warnings.filterwarnings("ignore", message=".*non-Python base image.*")
            return pipeline(**(arguments or {}))
    finally:
        if previous is None:
            os.environ.pop("TMPDIR", None)
        else:
            os.environ["TMPDIR"] = previous
