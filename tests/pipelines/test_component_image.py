"""The component image: every component names it, and its Dockerfile ships what their bodies import."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from components.image import NEXUS_IMAGE
from nexus.pipelines import PIPELINES, compiled_path

ROOT = Path(__file__).resolve().parents[2]


def test_every_compiled_step_runs_in_the_project_image_without_installs():
    for name in PIPELINES:
        spec = yaml.safe_load(compiled_path(name).read_text())
        executors = spec["deploymentSpec"]["executors"]
        assert executors, name
        for executor in executors.values():
            container = executor["container"]
            assert container["image"] == NEXUS_IMAGE
            assert "pip install" not in " ".join(container.get("command", []) + container.get("args", []))


def test_dockerfile_builds_the_image_the_components_name():
    dockerfile = (ROOT / "components" / "Dockerfile").read_text()
    assert f"-t {NEXUS_IMAGE} ." in dockerfile
    copied = set(re.findall(r"^COPY (\w+) \./\1$", dockerfile, flags=re.MULTILINE))
    assert {"nexus", "components", "pipelines"} <= copied
    extras = re.search(r"ARG EXTRAS=(\S+)", dockerfile).group(1).split(",")
    assert {"train", "serve", "pipelines"} <= set(extras)
