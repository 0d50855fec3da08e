"""Launching pipeline runs from the metadata service and following them to their end.

Local mode (the default): a launched run is a child process
``python -m nexus.cli.main pipeline run NAME --root <runs dir>/<run id> --arg name=value ...`` in its
own session (so its process group holds every step it starts), writing stdout and stderr to
``<root>/run.log``. It inherits the service's environment (``NEXUS_HOME``, ``NEXUS_MLFLOW_*``...), with
``NEXUS_HOME`` made absolute and ``KFP_HOST`` removed so the CLI runs locally. The row keeps its
handle in existing columns: ``external_id`` ``pid:<pid>``, ``artifacts`` ``root`` and ``log``.

A watcher task (started with the app by the runs router's lifespan) wakes every
``NEXUS_API_RUN_POLL_SECONDS`` (and at once when a run is created or cancelled) and

* starts queued runs, oldest first, while fewer than ``NEXUS_API_MAX_RUNNING_PIPELINES`` local runs are
  running (0 pauses launching: runs stay ``queued``);
* moves ``running`` runs to ``succeeded`` (metrics of every step's ``metrics`` file, links to the step
  folders, the registered model version) or ``failed`` (``message``: the CLI's ``error:`` line);
* after a restart, adopts runs whose process still runs, and fails those whose process is gone
  without a verdict in their log ("service restarted while the run was running").

Kubeflow mode (``NEXUS_API_KFP_HOST`` set): the run is submitted at creation with
:func:`nexus.pipelines.submit_pipeline`; ``external_id`` is the KFP run id, ``artifacts["kubeflow"]``
the UI link, and the watcher maps the state ``kfp.Client.get_run`` reports. The concurrency limit is
Kubeflow's business then. Following a real KFP host is not covered by the tests here.

One service process launches and follows local runs: run the service with a single worker (the
launcher's claims are conditional updates, but a child's exit status is known only to its parent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from nexus.errors import NexusError
from nexus.pipelines import coerce_arguments, load_pipeline, submit_pipeline
from nexus.service.audit import record, snapshot
from nexus.service.db import utcnow
from nexus.service.settings import ServiceSettings
from nexus.service.tables import PipelineRun

logger = logging.getLogger("nexus.service.runs")

LAUNCHER = "run-launcher"  # how the audit log names the watcher's own writes
LOG_NAME = "run.log"
PID_PREFIX = "pid:"
RESERVED_LINKS = frozenset({"root", "log", "kubeflow"})  # written by the launcher only
RESTARTED = "service restarted while the run was running"
SUCCESS_LINE = re.compile(r"^pipeline '.*' finished; artifacts under ")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
KFP_STATES = {
    "SUCCEEDED": "succeeded",
    "FAILED": "failed",
    "ERROR": "failed",
    "SKIPPED": "failed",
    "CANCELED": "cancelled",
    "CANCELLED": "cancelled",
}


class ParameterError(NexusError):
    """A launch request names an unknown pipeline, an unknown parameter or a value of the wrong type."""

    def __init__(self, message: str, loc: tuple[str, ...], value: Any) -> None:
        super().__init__(message)
        self.loc = loc
        self.value = value


def validate_launch(pipeline: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """The parameters converted to the pipeline's declared types.

    Raises:
        ParameterError: naming the pipeline or the one parameter that is wrong.
        NexusError: the pipelines cannot be loaded here (kfp is not installed).
    """
    try:
        load_pipeline(pipeline)
    except NexusError as error:
        raise ParameterError(str(error), ("body", "pipeline"), pipeline) from error
    except ImportError as error:  # a service installed without the ``pipelines`` extra
        raise NexusError(f"this service cannot launch pipelines: {error}") from error
    coerced: dict[str, Any] = {}
    for key, value in parameters.items():
        try:
            coerced.update(coerce_arguments(pipeline, {key: value}))
        except NexusError as error:
            raise ParameterError(str(error), ("body", "parameters", key), value) from error
    return coerced


def runs_dir(settings: ServiceSettings) -> Path:
    """Where local runs keep their roots (``NEXUS_API_PIPELINE_RUNS_DIR``, else ``<home>/pipeline-runs``)."""
    return Path(settings.pipeline_runs_dir or settings.home / "pipeline-runs").resolve()


def run_root(settings: ServiceSettings, run_id: int) -> Path:
    return runs_dir(settings) / str(run_id)


def is_local(run: PipelineRun) -> bool:
    """Launched (or to be launched) as a local child process."""
    return "log" in (run.artifacts or {})


def is_managed(run: PipelineRun) -> bool:
    """Status and handle belong to the launcher (local or Kubeflow)."""
    return bool(RESERVED_LINKS & set(run.artifacts or {}))


def local_pid(run: PipelineRun) -> int | None:
    external = run.external_id or ""
    if is_local(run) and external.startswith(PID_PREFIX) and external[len(PID_PREFIX) :].isdigit():
        return int(external[len(PID_PREFIX) :])
    return None


# --- processes ------------------------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """``(state, pgid)`` of a process from ``/proc``; None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def process_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    if Path("/proc").is_dir():
        stat = _proc_stat(pid)
        return stat is not None and stat[0] not in {"Z", "X"}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def group_alive(pgid: int) -> bool:
    """Some live (non-zombie) process is still in process group ``pgid``."""
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for entry in proc.iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] not in {"Z", "X"}:
                return True
    return False


def owns(pid: int, root: Path) -> bool:
    """``pid`` is this run's pipeline process (its command line names the run root), not a reused pid."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc").is_dir() and process_alive(pid)
    except (ProcessLookupError, PermissionError):
        return False
    return str(root).encode() in cmdline.split(b"\x00")


def child_environment() -> dict[str, str]:
    """The service's environment for a child run: ``NEXUS_HOME`` absolute, never ``KFP_HOST``, and not
    the workers' shared Prometheus folder (the run's metrics are not the service's)."""
    from nexus.settings import NexusSettings

    env = dict(os.environ)
    env["NEXUS_HOME"] = str(NexusSettings.from_env().home)
    for name in ("KFP_HOST", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(name, None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pipeline_command(pipeline: str, root: Path, parameters: dict[str, Any]) -> list[str]:
    command = [sys.executable, "-m", "nexus.cli.main", "pipeline", "run", pipeline, "--root", str(root)]
    return command + [f"--arg={key}={json.dumps(value)}" for key, value in parameters.items()]


def _set_aside(root: Path) -> None:
    """A root left by an earlier database with the same run id is renamed, never reused or deleted."""
    if root.exists() and any(root.iterdir()):
        root.rename(root.with_name(f"{root.name}.stale-{time.strftime('%Y%m%d-%H%M%S')}"))


# --- logs and results -----------------------------------------------------------------------------


def read_tail(path: Path, lines: int, max_bytes: int = 1024 * 1024) -> str:
    """The last ``lines`` lines of a log (at most ``max_bytes`` read), colour codes removed."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - max_bytes))
            data = handle.read()
    except FileNotFoundError:
        return ""
    text = ANSI.sub("", data.decode("utf-8", errors="replace"))
    kept = text.splitlines()[-lines:]
    return "\n".join(kept) + ("\n" if kept else "")


def log_verdict(log: Path) -> tuple[str, str] | None:
    """``("failed", reason)`` from the CLI's ``error:`` line, ``("succeeded", "")`` from its last
    line, or None when the log says neither (the process was killed, or is still running)."""
    for line in reversed(read_tail(log, 200).splitlines()):
        if line.startswith("error: "):
            return "failed", line.removeprefix("error: ").strip()[:2000]
        if SUCCESS_LINE.match(line):
            return "succeeded", ""
    return None


def outcome(returncode: int | None, log: Path) -> tuple[str, str]:
    """Status and reason of a finished local run (``returncode`` None: not our child, exit unknown)."""
    verdict = log_verdict(log)
    if returncode is None:
        return verdict or ("failed", RESTARTED)
    if returncode == 0:
        return "succeeded", ""
    if verdict is not None and verdict[0] == "failed":
        return verdict
    if returncode < 0:
        return "failed", f"the pipeline process was killed by {signal.Signals(-returncode).name}"
    return "failed", f"the pipeline process exited with status {returncode}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool | int | float) and float(value) == float(value) and abs(float(value)) < 1e300:
        return float(value)
    return None


def collect_results(root: Path, pipeline: str, parameters: dict[str, Any]) -> tuple[dict, dict]:
    """Metrics (``<step>.<name>`` from each step's ``metrics`` JSON file) and links (the pipeline job
    folder, each step folder, the registered model version) of a finished local run."""
    metrics: dict[str, float] = {}
    links: dict[str, str] = {}
    jobs = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] if root.is_dir() else []
    if not jobs:
        return metrics, links
    job = max(jobs, key=lambda p: p.stat().st_mtime)
    links["pipeline_run"] = str(job)
    for step in sorted(p for p in job.iterdir() if p.is_dir()):
        links[f"step.{step.name}"] = str(step)
        metrics_file = step / "metrics"
        if metrics_file.is_file():
            with contextlib.suppress(ValueError, OSError):
                values = json.loads(metrics_file.read_text(encoding="utf-8"))
                for name, value in (values if isinstance(values, dict) else {}).items():
                    if (number := _number(value)) is not None and len(metrics) < 500:
                        metrics[f"{step.name}.{name}"[:128]] = number
    register_output = job / "register" / "executor_output.json"
    if register_output.is_file():
        with contextlib.suppress(ValueError, OSError, KeyError, TypeError):
            version = json.loads(register_output.read_text())["parameterValues"]["Output"]
            model = parameters.get("registered_model") or _default(pipeline, "registered_model")
            if model and version:
                links["model_version"] = f"models:/{model}/{version}"
    return metrics, links


def _default(pipeline: str, parameter: str) -> Any:
    with contextlib.suppress(NexusError, KeyError, AttributeError):
        return load_pipeline(pipeline).component_spec.inputs[parameter].default
    return None


# --- Kubeflow -------------------------------------------------------------------------------------


def kfp_run_state(host: str, run_id: str) -> tuple[str, str]:
    """``(state, error message)`` of a Kubeflow run (blocking; called in a thread)."""
    import kfp

    run = kfp.Client(host=host).get_run(run_id)
    error = getattr(run, "error", None)
    message = getattr(error, "message", None) or (str(error) if error else "")
    return str(getattr(run, "state", "") or "").upper(), message


def kfp_terminate(host: str, run_id: str) -> None:
    """Ask Kubeflow to terminate a run (blocking; called in a thread)."""
    import kfp

    kfp.Client(host=host).terminate_run(run_id)


def kfp_link(host: str, run_id: str) -> str:
    return f"{host.rstrip('/')}/#/runs/details/{run_id}"


# --- the launcher ---------------------------------------------------------------------------------


@dataclass
class RunLauncher:
    """Starts queued runs, follows running ones and cancels them; one per app (``app.state``)."""

    settings: ServiceSettings
    sessionmaker: Any
    children: dict[int, subprocess.Popen] = field(default_factory=dict)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    # -- the watcher --

    async def watch(self, background: asyncio.Event | None = None) -> None:
        """Tick until cancelled (once ``background`` is set: this process runs the background work);
        a failing tick is logged and retried on the next one."""
        if background is not None:
            await background.wait()
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("run launcher tick failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.settings.run_poll_seconds)
            self.wake.clear()

    async def tick(self) -> None:
        async with self.lock, self.sessionmaker() as session:
            await self._follow(session)
            await self._start_queued(session)
        for run_id, child in list(self.children.items()):  # reap children of runs cancelled meanwhile
            if child.poll() is not None:
                self.children.pop(run_id, None)

    async def _follow(self, session: AsyncSession) -> None:
        running = (
            (
                await session.execute(
                    select(PipelineRun).where(
                        PipelineRun.status == "running",
                        or_(
                            PipelineRun.artifacts["log"].as_string().is_not(None),
                            PipelineRun.artifacts["kubeflow"].as_string().is_not(None),
                        ),
                    )
                )
            )
            .scalars()
            .all()
        )
        for run in running:
            if (pid := local_pid(run)) is not None:
                await self._follow_local(session, run, pid)
            elif is_local(run):  # running without a process: never started (a hand-edited row)
                await self.transition(session, run, "failed", {"message": RESTARTED}, LAUNCHER)
            elif self.settings.kfp_host and "kubeflow" in (run.artifacts or {}) and run.external_id:
                await self._follow_kubeflow(session, run, self.settings.kfp_host, run.external_id)

    async def _follow_local(self, session: AsyncSession, run: PipelineRun, pid: int) -> None:
        root = run_root(self.settings, run.id)
        child = self.children.get(run.id)
        if child is not None:
            returncode = child.poll()
            if returncode is None:
                return
            self.children.pop(run.id, None)
        elif process_alive(pid) and owns(pid, root):
            return  # adopted: started by an earlier service process and still running
        else:
            returncode = None
        new_status, reason = outcome(returncode, root / LOG_NAME)
        changes: dict[str, Any] = {"message": reason}
        if new_status == "succeeded":
            metrics, links = await asyncio.to_thread(
                collect_results, root, run.pipeline, run.parameters or {}
            )
            changes["metrics"] = {**(run.metrics or {}), **metrics}
            changes["artifacts"] = {**(run.artifacts or {}), **links}
        await self.transition(session, run, new_status, changes, LAUNCHER)

    async def _follow_kubeflow(self, session: AsyncSession, run: PipelineRun, host: str, run_id: str) -> None:
        try:
            state, error = await asyncio.to_thread(kfp_run_state, host, run_id)
        except Exception as exc:
            logger.warning("cannot read Kubeflow run %s of run %s: %s", run_id, run.id, exc)
            return
        if (new_status := KFP_STATES.get(state)) is not None:
            reason = "" if new_status == "succeeded" else (error or f"Kubeflow reports {state}")
            await self.transition(session, run, new_status, {"message": reason[:2000]}, LAUNCHER)

    async def _start_queued(self, session: AsyncSession) -> None:
        limit = self.settings.max_running_pipelines
        if limit <= 0:
            return
        running = (
            await session.execute(
                select(func.count())
                .select_from(PipelineRun)
                .where(PipelineRun.status == "running", PipelineRun.external_id.like(f"{PID_PREFIX}%"))
            )
        ).scalar_one()
        if running >= limit:
            return
        # Only launched runs have a log link; runs merely recorded through the API (often thousands)
        # are never loaded here.
        queued = (
            (
                await session.execute(
                    select(PipelineRun)
                    .where(
                        PipelineRun.status == "queued",
                        PipelineRun.external_id.is_(None),
                        PipelineRun.artifacts["log"].as_string().is_not(None),
                    )
                    .order_by(PipelineRun.id)
                    .limit(limit - running)
                )
            )
            .scalars()
            .all()
        )
        for run in queued:
            if is_local(run):
                await self._start_local(session, run)

    async def _start_local(self, session: AsyncSession, run: PipelineRun) -> None:
        root = run_root(self.settings, run.id)
        try:
            _set_aside(root)
            root.mkdir(parents=True, exist_ok=True)
            with (root / LOG_NAME).open("ab") as log:
                child = subprocess.Popen(
                    pipeline_command(run.pipeline, root, run.parameters or {}),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    env=child_environment(),
                )
        except (OSError, NexusError) as error:
            await self.transition(session, run, "failed", {"message": f"cannot start: {error}"}, LAUNCHER)
            return
        changes = {"external_id": f"{PID_PREFIX}{child.pid}", "message": ""}
        if not await self.transition(session, run, "running", changes, LAUNCHER):
            os.killpg(child.pid, signal.SIGKILL)  # cancelled or claimed meanwhile
            await asyncio.to_thread(child.wait)
            return
        self.children[run.id] = child
        logger.info("run %s started: %s pid %s, log %s", run.id, run.pipeline, child.pid, root / LOG_NAME)

    # -- requests --

    async def submit_kubeflow(self, session: AsyncSession, run: PipelineRun, actor: Any) -> None:
        """Submit a just-created run to Kubeflow; it becomes ``running`` or ``failed`` with the reason."""
        host = self.settings.kfp_host
        assert host
        try:
            run_id = await asyncio.to_thread(submit_pipeline, run.pipeline, host, run.parameters or {})
        except NexusError as error:
            await self.transition(session, run, "failed", {"message": str(error)[:2000]}, actor)
            return
        changes = {
            "external_id": run_id[:128],
            "artifacts": {**(run.artifacts or {}), "kubeflow": kfp_link(host, run_id)},
        }
        await self.transition(session, run, "running", changes, actor)

    async def cancel(self, session: AsyncSession, run: PipelineRun, actor: Any) -> bool:
        """Cancel a queued or running run (its process group killed, or its Kubeflow run terminated).

        Returns False when the run had already ended.
        """
        async with self.lock:
            await session.refresh(run)
            if run.status not in {"queued", "running"}:
                return False
            message = f"cancelled by {getattr(actor, 'label', actor)}"
            pid = local_pid(run)
            if run.status == "running" and "kubeflow" in (run.artifacts or {}) and self.settings.kfp_host:
                try:
                    await asyncio.to_thread(kfp_terminate, self.settings.kfp_host, run.external_id or "")
                except Exception as error:
                    first = (str(error).strip().splitlines() or [type(error).__name__])[0]
                    raise NexusError(
                        f"Kubeflow did not terminate run {run.external_id}: {first[:300]}"
                    ) from error
            if not await self.transition(session, run, "cancelled", {"message": message}, actor):
                return False
            if pid is not None:
                await self._kill(run.id, pid)
        self.wake.set()  # a slot may have freed
        return True

    async def _kill(self, run_id: int, pid: int) -> None:
        """SIGTERM the run's process group, SIGKILL what is left after the grace period; reap the child."""
        child = self.children.get(run_id)
        if child is None and not owns(pid, run_root(self.settings, run_id)):
            return  # gone, or the pid now belongs to someone else
        for sig, wait in ((signal.SIGTERM, self.settings.run_cancel_grace_seconds), (signal.SIGKILL, 10.0)):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if child is not None:
                    child.poll()
                if not group_alive(pid):
                    break
                await asyncio.sleep(0.05)
            else:
                continue
            break
        if child is not None and child.poll() is not None:
            self.children.pop(run_id, None)
        logger.info("run %s cancelled: process group %s stopped", run_id, pid)

    # -- writes --

    async def transition(
        self, session: AsyncSession, run: PipelineRun, new_status: str, changes: dict[str, Any], actor: Any
    ) -> bool:
        """Move ``run`` from its current status to ``new_status`` only if nobody changed it meanwhile
        (a conditional UPDATE); audited. Returns whether it moved."""
        now = utcnow()
        values = dict(changes, status=new_status)
        if new_status == "running":
            values["started_at"] = now
        elif new_status in {"succeeded", "failed", "cancelled"}:
            values["finished_at"] = now
        before = snapshot(run)
        result = await session.execute(
            update(PipelineRun)
            .where(PipelineRun.id == run.id, PipelineRun.status == run.status)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:
            await session.rollback()
            await session.refresh(run)
            return False
        await session.refresh(run)
        record(session, actor, "update", "run", run.id, before, snapshot(run))
        await session.commit()
        if new_status != "running":
            logger.info("run %s %s %s", run.id, new_status, changes.get("message", ""))
        return True


@contextlib.asynccontextmanager
async def launcher_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the watcher while the app runs (entered after the app's own lifespan made the engine).

    Child runs are left running at shutdown; the next start adopts them (or fails them if gone).
    """
    launcher = RunLauncher(app.state.settings, app.state.sessionmaker)
    app.state.run_launcher = launcher
    background = getattr(app.state, "background", None)
    task = asyncio.create_task(launcher.watch(background), name="run-launcher")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
