"""A local deployment: which registered versions serve (champion, challenger at N%) and the running server.

The record lives in ``$NEXUS_HOME/deployments/<name>.json`` and is written atomically, so a crash
never leaves half a record. ``start_server`` runs ``nexus serve`` for the record in the background
(champion alone, or champion + challenger behind the canary router) and ``stop_server`` ends it.

Example:
    >>> record = LocalDeployment.load(settings, "nexus-detector")  # doctest: +SKIP
    >>> record.champion, record.challenger, record.canary_percent  # doctest: +SKIP
    ('1', '2', 10.0)
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from nexus.errors import DeploymentError
from nexus.settings import NexusSettings


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class LocalDeployment:
    """State of one local deployment of a registered model.

    Attributes:
        name: deployment name (also the served model name in /v1 and /v2 URLs).
        registered_model: MLflow registered model it serves versions of.
        champion: version serving the rest of the traffic (``None`` before the first deployment).
        challenger: version under canary, if any.
        canary_percent: challenger's share of traffic (0-100).
        url: endpoint of the running server (router or predictor), if started.
        pid: process id of the running server, if started.
        history: every change, oldest first.
    """

    name: str
    registered_model: str = "nexus-detector"
    champion: str | None = None
    challenger: str | None = None
    canary_percent: float = 0.0
    url: str | None = None
    pid: int | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    home: Path = field(default=Path(".nexus"), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("-", "").replace("_", "").isalnum():
            raise DeploymentError(f"deployment name {self.name!r} must be letters, digits, '-' or '_'")
        if not 0 <= self.canary_percent <= 100:
            raise DeploymentError(f"canary percent must be within [0, 100], got {self.canary_percent}")

    @staticmethod
    def path_for(settings: NexusSettings, name: str) -> Path:
        return settings.home / "deployments" / f"{name}.json"

    @property
    def path(self) -> Path:
        return self.home / "deployments" / f"{self.name}.json"

    @classmethod
    def load(
        cls, settings: NexusSettings, name: str, registered_model: str = "nexus-detector"
    ) -> LocalDeployment:
        """The record of ``name``; an empty one (nothing deployed) if it does not exist yet."""
        path = cls.path_for(settings, name)
        if not path.is_file():
            return cls(name=name, registered_model=registered_model, home=settings.home)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise DeploymentError(f"unreadable deployment record: {error}", path=path) from error
        return cls(**data, home=settings.home)

    @classmethod
    def require(cls, settings: NexusSettings, name: str) -> LocalDeployment:
        """The record of ``name``; raises ``DeploymentError`` listing the deployments there are when
        nothing was ever deployed under that name (a typo would otherwise read as an empty record)."""
        if not cls.path_for(settings, name).is_file():
            known = sorted(path.stem for path in (settings.home / "deployments").glob("*.json"))
            raise DeploymentError(
                f"no deployment named {name!r} (deployments: {', '.join(known) or 'none yet'}); "
                "'nexus pipeline run training' or 'nexus registry promote' deploys a model"
            )
        return cls.load(settings, name)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {k: v for k, v in asdict(self).items() if k != "home"}
        scratch = self.path.with_suffix(f".{os.getpid()}.tmp")
        scratch.write_text(json.dumps(data, indent=2), encoding="utf-8")
        os.replace(scratch, self.path)

    def record(self, action: str, **details: Any) -> None:
        self.history.append({"time": _now(), "action": action, **details})

    def model_uri(self, version: str) -> str:
        return f"models:/{self.registered_model}/{version}"

    def is_running(self) -> bool:
        if self.pid is None:
            return False
        try:
            os.kill(self.pid, 0)
        except OSError:
            return False
        return True

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "home"}
        data["running"] = self.is_running()
        return data


def serve_command_line(record: LocalDeployment, port: int, log_dir: Path) -> list[str]:
    """The ``nexus serve`` command that serves ``record`` (champion, plus challenger if any)."""
    if record.champion is None:
        raise DeploymentError(f"deployment {record.name!r} has no champion yet: deploy a model first")
    command = [
        sys.executable, "-m", "nexus.cli.main", "serve", record.model_uri(record.champion),
        "--port", str(port), "--name", record.name, "--version", f"v{record.champion}",
    ]  # fmt: skip
    if record.challenger is not None:
        command += [
            "--canary", record.model_uri(record.challenger), "--canary-version", f"v{record.challenger}",
            "--canary-percent", f"{record.canary_percent:g}", "--log-dir", str(log_dir),
        ]  # fmt: skip
    return command


def _wait_ready(url: str, record: LocalDeployment, process: subprocess.Popen, timeout_s: float) -> None:
    probe = f"{url}/v2/models/{record.name}/ready"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            from nexus.serving.launcher import last_error_line

            log = record.home / "deployments" / f"{record.name}.log"
            reason = last_error_line(log)
            raise DeploymentError(
                f"the server for {record.name!r} exited with status {process.returncode} while starting"
                + (f" ({reason})" if reason else "")
                + f"; see {log}"
            )
        try:
            if httpx.get(probe, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise DeploymentError(f"the server for {record.name!r} was not ready at {url} within {timeout_s:.0f} s")


def start_server(
    record: LocalDeployment, port: int | None = None, timeout_s: float = 180.0
) -> LocalDeployment:
    """Start ``nexus serve`` for the record in the background (its own session) and wait until ready.

    A server already running for the record is stopped first, so the new one serves the record's
    current versions.
    """
    from nexus.serving.launcher import free_port

    stop_server(record)
    port = port or free_port()
    log_dir = record.home / "deployments"
    log_dir.mkdir(parents=True, exist_ok=True)
    log = open(log_dir / f"{record.name}.log", "ab")  # noqa: SIM115 - handed to the child
    env = dict(os.environ, ORT_DISABLE_TELEMETRY="1", NEXUS_HOME=str(record.home), PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        serve_command_line(record, port, log_dir),
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    log.close()
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, record, process, timeout_s)
    except BaseException:
        _terminate(process.pid)
        raise
    record.url, record.pid = url, process.pid
    record.record("start", url=url, champion=record.champion, challenger=record.challenger)
    record.save()
    return record


def _terminate(pid: int, timeout_s: float = 15.0) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return
        except ChildProcessError:
            pass  # not our child: poll until it is gone
        except OSError:
            return
        time.sleep(0.1)
    with contextlib.suppress(OSError):
        os.killpg(pid, signal.SIGKILL)


def stop_server(record: LocalDeployment) -> bool:
    """Stop the record's running server; returns whether one was running."""
    running = record.is_running()
    if record.pid is not None and running:
        _terminate(record.pid)
    if record.pid is not None or record.url is not None:
        record.record("stop", url=record.url)
        record.pid, record.url = None, None
        record.save()
    return running
