"""Keep every library offline and telemetry-free before it is imported.

Ultralytics, MLflow, onnxruntime and DVC each reach the network by default (version checks, fonts,
analytics). ``ensure_offline`` sets their switches; call it before importing any of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
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

# Ultralytics' own integrations (each would log or upload on its own) and its analytics: all off.
_ULTRALYTICS_SWITCHES_OFF = (
    "sync",
    "clearml",
    "comet",
    "dvc",
    "mlflow",
    "raytune",
    "tensorboard",
    "wandb",
    "vscode_msg",
    "openvino_msg",
)
_ULTRALYTICS_SETTINGS_VERSION = "0.0.8"  # the schema of ultralytics 8.4; newer ones migrate our values

_done_for: Path | None = None


def ultralytics_settings(home: Path) -> dict[str, object]:
    """The Ultralytics settings Nexus enforces: directories under ``home``, integrations off.

    Example:
        >>> ultralytics_settings(Path("/srv/.nexus"))["runs_dir"]
        '/srv/.nexus/runs'
    """
    values: dict[str, object] = {
        "datasets_dir": str(home / "datasets"),
        "weights_dir": str(home / "weights"),
        "runs_dir": str(home / "runs"),
        "api_key": "",
    }
    values.update(dict.fromkeys(_ULTRALYTICS_SWITCHES_OFF, False))
    return values


def _write_ultralytics_settings(settings_file: Path, home: Path) -> None:
    """Write Ultralytics' ``settings.json`` before it is imported, so even its import-time defaults
    (MLflow, ClearML, Comet, DVC and Ray Tune integrations on, analytics on) never take effect."""
    try:
        current = json.loads(settings_file.read_text(encoding="utf-8")) if settings_file.exists() else {}
    except (OSError, ValueError):
        current = {}
    if not isinstance(current, dict):
        current = {}
    wanted = {
        "settings_version": _ULTRALYTICS_SETTINGS_VERSION,
        "uuid": hashlib.sha256(str(uuid.getnode()).encode()).hexdigest(),
        "openai_api_key": "",
        **current,
        **ultralytics_settings(home),
    }
    if wanted != current:
        settings_file.parent.mkdir(parents=True, exist_ok=True)
        settings_file.write_text(json.dumps(wanted, indent=2), encoding="utf-8")


def ensure_offline(settings: NexusSettings | None = None) -> None:
    """Set the offline switches and keep Ultralytics' settings under the project's home.

    Ultralytics checks for ``Arial.ttf`` on every dataset check and downloads it when missing (not
    stopped by ``YOLO_OFFLINE``), so a local TTF is placed where it looks. Its ``settings.json`` is
    written with every built-in integration and analytics off and its directories under the home.
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
    _write_ultralytics_settings(font_dir / "settings.json", settings.home)
    _done_for = config_dir
