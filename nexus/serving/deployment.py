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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import httpx
import psutil

from nexus.errors import DeploymentError
from nexus.settings import NexusSettings


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _check_name(name: str) -> None:
    if not name or not name.replace("-", "").replace("_", "").isalnum():
        raise DeploymentError(f"deployment name {name!r} must be letters, digits, '-' or '_'")


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
        _check_name(self.name)
        if not 0 <= self.canary_percent <= 100:
            raise DeploymentError(f"canary percent must be within [0, 100], got {self.canary_percent}")

    @staticmethod
    def path_for(settings: NexusSettings, name: str) -> Path:
        _check_name(name)  # never a path out of the deployments folder
        return settings.home / "deployments" / f"{name}.json"

    @property
    def path(self) -> Path:
        return self.home / "deployments" / f"{self.name}.json"

    @classmethod
    def load(
        cls, settings: NexusSettings, name: str, registered_model: str = "nexus-detector"
    ) -> LocalDeployment:
        """The record of ``name``; an empty one (nothing deployed) if it does not exist yet.

        Raises:
            DeploymentError: the record is there but unreadable; it is left as it is.
        """
        path = cls.path_for(settings, name)
        if not path.is_file():
            return cls(name=name, registered_model=registered_model, home=settings.home)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            problem = _record_problem(data, name)
            if problem is None:
                return cls(**data, home=settings.home)
        except (OSError, ValueError) as error:  # ValueError: not JSON, not UTF-8
            problem = str(error)
        except DeploymentError as error:  # a field out of range
            problem = str(error)
        raise DeploymentError(
            f"unreadable deployment record ({problem}); nothing was changed: repair the file, or move it "
            "aside and deploy again (its history stays in the moved file)",
            path=path,
        )

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
        """Whether the server this record started still runs: a process under ``pid`` that is not
        that server (the pid taken by another program since) does not count."""
        if self.pid is None:
            return False
        try:
            command = psutil.Process(self.pid).cmdline()
        except psutil.Error:  # gone, a zombie, or not ours to see
            return False
        return command[1:4] == ["-m", "nexus.cli.main", "serve"] and _option(command, "--name") == self.name

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in asdict(self).items() if k != "home"}
        data["running"] = self.is_running()
        return data


def _option(command: list[str], option: str) -> str | None:
    index = command.index(option) if option in command else -1
    return command[index + 1] if 0 <= index < len(command) - 1 else None


_RECORD_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "registered_model": (str,),
    "champion": (str, type(None)),
    "challenger": (str, type(None)),
    "canary_percent": (int, float),
    "url": (str, type(None)),
    "pid": (int, type(None)),
    "history": (list,),
}


def _record_problem(data: Any, name: str) -> str | None:
    """What makes ``data`` (a record as read from disk) unusable as the record of ``name``, or ``None``."""
    if not isinstance(data, dict):
        return f"a JSON object expected, got {type(data).__name__}"
    known = {f.name for f in fields(LocalDeployment)} - {"home"}
    unknown = sorted(set(data) - known)
    if unknown:
        return f"unknown field(s) {', '.join(map(repr, unknown))}"
    if "name" not in data:
        return "no field 'name'"
    for key, value in data.items():
        if isinstance(value, bool) or not isinstance(value, _RECORD_TYPES[key]):
            return f"field {key!r} has the wrong type: {value!r}"[:200]
    if data["name"] != name:
        return f"it names deployment {data['name']!r}"
    if data.get("pid") is not None and data["pid"] <= 1:
        return f"pid {data['pid']} is no server's"
    if not all(isinstance(entry, dict) for entry in data.get("history", [])):
        return "field 'history' must be a list of objects"
    return None


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
            "--deployment", record.name,
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
    from nexus.serving.launcher import ensure_port_free, free_port

    if port and not (record.is_running() and record.url == f"http://127.0.0.1:{port}"):
        ensure_port_free("127.0.0.1", port)  # before stopping the server that runs now, not after
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
    """End the server ``pid`` and, when it leads its own process group (its session), the predictors
    it started."""
    if pid <= 1:  # kill(-1) would signal every process of the user
        return
    try:
        leads_group = os.getpgid(pid) == pid
    except OSError:
        return
    kill = os.killpg if leads_group else os.kill
    try:
        kill(pid, signal.SIGTERM)
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
        kill(pid, signal.SIGKILL)


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
