"""Dataset versions with DVC: content hashes, ``.dvc`` records, restoring tracked data, S3 copies.

:func:`dvc_hash` is DVC's own hash (computed by ``dvc_data``), so the hash of a dataset folder equals the
``md5`` its ``.dvc`` file records; pipelines tag models with it for lineage. :func:`restore` brings a
tracked folder that is missing back from the DVC cache (``dvc checkout``) or the default remote
(``dvc pull``). DVC runs with its telemetry off (``DVC_NO_ANALYTICS=1``), whatever the environment says.

Example:
    >>> from nexus.datasets.versioning import dvc_hash, read_dvc_file, restore
    >>> tracked = read_dvc_file("data.dvc")  # doctest: +SKIP
    >>> tracked.path.name, tracked.md5  # doctest: +SKIP
    ('sample', '3bcba34da6d55c2f85c05900e429c913.dir')
    >>> dvc_hash(restore(tracked)) == tracked.md5  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from nexus.errors import DatasetError

DVC_ENV = {"DVC_NO_ANALYTICS": "1"}
"""Environment every ``dvc`` command started from here gets (no usage analytics)."""

SAMPLE_DVC_FILE = "data.dvc"
"""The repository's record of the sample dataset (``data/sample``); ``source="dvc"`` names it."""

SAMPLE_SYNTH_COMMAND = "nexus data synth data/sample --images 360 --seed 0 --imgsz 160"
"""Regenerates ``data/sample`` byte for byte (the sample dataset is synthetic and deterministic)."""


def find_dvc_root(path: str | Path) -> Path | None:
    """The nearest folder at or above ``path`` holding a ``.dvc`` directory (a DVC repository)."""
    start = Path(path).absolute()
    for folder in (start, *start.parents):
        if (folder / ".dvc").is_dir():
            return folder
    return None


def dvc_hash(path: str | Path) -> str:
    """The hash DVC records for ``path``: ``<md5>.dir`` for a folder, the file's ``md5`` for a file.

    Computed with DVC's own library (``dvc_data``), so it equals ``dvc add``'s value. Inside a DVC
    repository the repository's ``.dvcignore`` rules apply, as they do for DVC (this repository ignores
    Ultralytics' ``labels/*.cache``); elsewhere every file counts.

    Example:
        >>> dvc_hash("data/sample")  # doctest: +SKIP
        '3bcba34da6d55c2f85c05900e429c913.dir'

    Raises:
        DatasetError: ``path`` does not exist, or DVC is not installed.
    """
    target = Path(path).absolute()
    if not target.exists():
        raise DatasetError("no such file or folder to hash", path=path)
    try:
        from dvc.fs import localfs
        from dvc_data.hashfile.build import build
        from dvc_data.hashfile.db import HashFileDB
        from dvc_objects.fs import MemoryFileSystem
    except ImportError as error:  # pragma: no cover - depends on the extra
        raise DatasetError("DVC hashes need the 'pipelines' extra (dvc)") from error
    ignore = None
    root = find_dvc_root(target)
    if root is not None and target.is_dir():
        from dvc.ignore import DvcIgnoreFilter

        ignore = DvcIgnoreFilter(localfs, str(root))
    # dry_run: hash only; the staging object store lives in memory and is dropped afterwards.
    staging = HashFileDB(MemoryFileSystem(global_store=False), "/staging")
    _, _, obj = build(staging, str(target), localfs, "md5", ignore=ignore, dry_run=True)
    return str(obj.hash_info.value)


@dataclass(frozen=True)
class TrackedPath:
    """What a ``.dvc`` file records about the one file or folder it tracks.

    Attributes:
        dvc_file: the ``.dvc`` file (absolute).
        path: the tracked file or folder (absolute; it may be missing from the workspace).
        md5: the recorded hash (``<md5>.dir`` for a folder), ``None`` if never committed.
        size: bytes in total, when recorded.
        nfiles: files in a folder, when recorded.

    Example:
        >>> read_dvc_file("data.dvc").path.relative_to(Path.cwd())  # doctest: +SKIP
        PosixPath('data/sample')
    """

    dvc_file: Path
    path: Path
    md5: str | None
    size: int | None = None
    nfiles: int | None = None

    @property
    def repo_root(self) -> Path | None:
        return find_dvc_root(self.dvc_file.parent)


def read_dvc_file(dvc_file: str | Path) -> TrackedPath:
    """Parse a ``.dvc`` file that tracks one output.

    Raises:
        DatasetError: the file is missing, not YAML, or does not track exactly one path.
    """
    file = Path(dvc_file).absolute()
    try:
        content = yaml.safe_load(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DatasetError("no such .dvc file", path=dvc_file) from None
    except (OSError, yaml.YAMLError) as error:
        raise DatasetError(f"not a readable .dvc file: {error}", path=dvc_file) from error
    outs = content.get("outs") if isinstance(content, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict) or "path" not in outs[0]:
        raise DatasetError("a .dvc file should track exactly one path (outs: [{path: ...}])", path=dvc_file)
    out = outs[0]
    return TrackedPath(
        dvc_file=file,
        path=Path(os.path.normpath(file.parent / str(out["path"]))),
        md5=out.get("md5"),
        size=out.get("size"),
        nfiles=out.get("nfiles"),
    )


def find_dvc_file(path: str | Path) -> Path | None:
    """The ``.dvc`` file tracking ``path``: ``path`` itself if it is one, a sibling ``<name>.dvc``, or a
    ``.dvc`` file in a parent folder (up to the repository root) whose output is ``path``.

    Example:
        >>> find_dvc_file("data/sample")  # doctest: +SKIP
        PosixPath('/repo/data.dvc')
    """
    target = Path(os.path.normpath(Path(path).absolute()))
    if target.suffix == ".dvc":
        return target if target.is_file() else None
    sibling = target.with_name(target.name + ".dvc")
    if sibling.is_file():
        return sibling
    root = find_dvc_root(target.parent)
    if root is None:
        return None
    for folder in target.parents:
        for candidate in sorted(folder.glob("*.dvc")):
            try:
                if read_dvc_file(candidate).path == target:
                    return candidate
            except DatasetError:
                continue
        if folder == root:
            break
    return None


def resolve_dvc_source(source: str | Path, cwd: str | Path | None = None) -> TrackedPath | None:
    """What a dataset ``source`` names when it is DVC-tracked, else ``None``.

    ``dvc`` names the repository's sample dataset (``data.dvc`` at the root of the DVC repository
    around ``cwd``, else of this checkout); a ``.dvc`` file names its output; a path names itself when a
    ``.dvc`` file tracks it (see :func:`find_dvc_file`).

    Example:
        >>> resolve_dvc_source("dvc").dvc_file.name  # doctest: +SKIP
        'data.dvc'

    Raises:
        DatasetError: ``source`` is ``dvc`` but no ``data.dvc`` is found, or the ``.dvc`` file is malformed.
    """
    if str(source) == "dvc":
        here = Path(cwd) if cwd is not None else Path.cwd()
        checkout = Path(__file__).resolve().parents[2]
        for root in (find_dvc_root(here), checkout):
            if root is not None and (root / SAMPLE_DVC_FILE).is_file():
                return read_dvc_file(root / SAMPLE_DVC_FILE)
        raise DatasetError(f"source 'dvc' needs {SAMPLE_DVC_FILE} in the DVC repository", path=here)
    dvc_file = find_dvc_file(Path(cwd or ".") / source)
    return read_dvc_file(dvc_file) if dvc_file is not None else None


def run_dvc(args: list[str], cwd: str | Path) -> subprocess.CompletedProcess[str]:
    """Run ``dvc ARGS`` (this interpreter's DVC) in ``cwd`` with analytics off; output is captured."""
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        env={**os.environ, **DVC_ENV},
        capture_output=True,
        text=True,
        check=False,
    )


def _pull_failure(result: subprocess.CompletedProcess[str]) -> str:
    """DVC's reason for a failed ``dvc pull``, in one line."""
    text = result.stderr + result.stdout
    if "neither locally nor on remote" in text:
        return "the remote does not hold it"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index in range(len(lines) - 1, -1, -1):
        if lines[index].startswith("ERROR"):
            reason = lines[index].removeprefix("ERROR:").strip()
            if reason.endswith(":") and index + 1 < len(lines):
                reason = f"{reason} {lines[index + 1]}"
            return reason
    return lines[-1] if lines else f"exit code {result.returncode}"


def restore(tracked: TrackedPath | str | Path, remote: str | None = None) -> Path:
    """Make a DVC-tracked path present: ``dvc checkout`` from the cache, else ``dvc pull`` from
    ``remote`` (the default remote when ``None``). A path that already exists is left as it is.

    ``tracked`` is a :class:`TrackedPath`, a ``.dvc`` file or a tracked path. Returns the path.

    Example:
        >>> restore("data.dvc")  # doctest: +SKIP
        PosixPath('/repo/data/sample')

    Raises:
        DatasetError: nothing tracks the path, it is outside a DVC repository, or neither the cache nor
            the remote holds its data (the message carries DVC's reason).
    """
    if not isinstance(tracked, TrackedPath):
        dvc_file = find_dvc_file(tracked)
        if dvc_file is None:
            raise DatasetError("not tracked by DVC (no .dvc file names it)", path=tracked)
        tracked = read_dvc_file(dvc_file)
    if tracked.path.exists():
        return tracked.path
    root = tracked.repo_root
    if root is None:
        raise DatasetError(
            "the .dvc file is not inside a DVC repository (no .dvc/ folder)", path=tracked.dvc_file
        )
    if tracked.md5 is None:
        raise DatasetError(
            "the .dvc file records no hash: run `dvc commit` where the data is", path=tracked.dvc_file
        )
    target = os.path.relpath(tracked.dvc_file, root)
    if run_dvc(["checkout", target], root).returncode == 0 and tracked.path.exists():
        return tracked.path
    result = run_dvc(["pull", target, *(["--remote", remote] if remote else [])], root)
    if result.returncode == 0 and tracked.path.exists():
        return tracked.path
    hint = (
        f"; if it is the synthetic sample, `{SAMPLE_SYNTH_COMMAND}` regenerates it"
        if tracked.dvc_file.name == SAMPLE_DVC_FILE
        else ""
    )
    raise DatasetError(
        f"{os.path.relpath(tracked.path, root)} ({tracked.md5}) is in neither the DVC cache nor the "
        f"{'remote ' + repr(remote) if remote else 'default remote'}: dvc pull: {_pull_failure(result)}"
        f"{hint}",
        path=tracked.dvc_file,
    )


def download_s3_prefix(uri: str, target: str | Path) -> Path:
    """Copy every object under ``s3://bucket/prefix`` into ``target`` (keys relative to the prefix).

    Endpoint and credentials come from ``S3_ENDPOINT`` (``host:port``), ``AWS_ACCESS_KEY_ID``,
    ``AWS_SECRET_ACCESS_KEY`` and ``S3_SECURE`` (``0``/``1``), as for ``s3://`` model URIs.

    Example:
        >>> download_s3_prefix("s3://datasets/parts/v3", "/tmp/parts")  # doctest: +SKIP
        PosixPath('/tmp/parts')

    Raises:
        DatasetError: not an ``s3://`` URI, nothing under the prefix, or the server refused.
    """
    from nexus.errors import NexusError
    from nexus.object_store import parse_s3_uri, s3_client_from_env

    try:
        bucket, prefix = parse_s3_uri(uri)
        client = s3_client_from_env()
    except NexusError as error:
        raise DatasetError(str(error)) from error
    folder = Path(target)
    count = 0
    try:
        for item in client.list_objects(bucket, prefix=f"{prefix}/" if prefix else "", recursive=True):
            name = str(item.object_name)
            relative = name[len(prefix) + 1 :] if prefix else name
            if not relative or name.endswith("/"):
                continue
            client.fget_object(bucket, name, str(folder / relative))
            count += 1
    except Exception as error:  # minio raises S3Error, urllib3 errors, OSError
        raise DatasetError(f"cannot download {uri}: {str(error)[:200]}") from error
    if count == 0:
        raise DatasetError(f"no objects under {uri}")
    return folder
