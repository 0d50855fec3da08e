"""Keep every library offline and telemetry-free before it is imported.

Ultralytics, MLflow, onnxruntime and DVC each reach the network by default (version checks, fonts,
analytics). ``ensure_offline`` sets their switches; call it before importing any of them.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from nexus.settings import NexusSettings

_ENV_SWITCHES = {
    "YOLO_OFFLINE": "1",
    "YOLO_AUTOINSTALL": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "ORT_DISABLE_TELEMETRY": "1",
    "DVC_NO_ANALYTICS": "1",
    "HF_HUB_OFFLINE": "1",
    "GIT_PYTHON_REFRESH": "quiet",
}

_done_for: Path | None = None


def ensure_offline(settings: NexusSettings | None = None) -> None:
    """Set the offline switches and keep Ultralytics' settings under the project's home.

    Ultralytics checks for ``Arial.ttf`` on every dataset check and downloads it when missing (not
    stopped by ``YOLO_OFFLINE``), so a local TTF is placed where it looks.
    """
    global _done_for
    settings = settings or NexusSettings.from_env()
    for key, value in _ENV_SWITCHES.items():
        os.environ.setdefault(key, value)
    config_dir = settings.ultralytics_config_dir
    if _done_for == config_dir:
        return
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    font_dir = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics"
    font_dir.mkdir(parents=True, exist_ok=True)
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        target = font_dir / name
        if not target.exists():
            shutil.copyfile(source, target)
    _done_for = config_dir
