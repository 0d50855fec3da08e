"""The container image every component runs in (built from the repository's Dockerfile)."""

import os

NEXUS_IMAGE = os.environ.get("NEXUS_COMPONENT_IMAGE", "ghcr.io/nexus-ai/nexus-platform:0.1.0")
