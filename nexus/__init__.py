"""NexusAI Platform: pipeline-first MLOps for computer vision."""

from nexus.detections import Detections
from nexus.errors import NexusError

__all__ = ["Detections", "NexusError", "__version__"]
__version__ = "0.1.0"
