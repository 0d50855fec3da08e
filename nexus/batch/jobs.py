"""What every Spark batch job shares: sessions, the model per worker, staging and the Delta commit.

A job resolves its model and table on the driver (:func:`prepare_job`), lets Spark compute rows into a
Parquet staging folder (:func:`stage_rows`), then commits the staged files to the Delta table in one
delta-rs transaction (:func:`commit_staged`) and removes the staging folder.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nexus.errors import NexusError

WriteMode = Literal["append", "overwrite"]


class BatchError(NexusError):
    """A batch job's input, model or output table is unusable."""


# Spark master URLs: local, local[4], local[*], local[4,2], local-cluster[2,1,1024], spark://, k8s://, yarn.
_MASTER = re.compile(
    r"^(local(\[(\*|[1-9]\d*)(\s*,\s*[1-9]\d*)?\])?|local-cluster\[[1-9]\d*,[1-9]\d*,[1-9]\d*\]"
    r"|(spark|k8s|mesos)://\S+|yarn)$"
)


def check_master(master: str) -> None:
    """Refuse a Spark master Spark cannot start (it fails late with a Java gateway traceback).

    Example:
        >>> check_master("local[2]")
    """
    if not isinstance(master, str) or not _MASTER.match(master):
        raise BatchError(
            f"master={master!r} is not a Spark master; pass local, local[N], local[*], spark://host:7077, "
            "k8s://https://host or yarn"
        )


def result_schema(leading: list[tuple[str, Any]]):
    """The Arrow schema of a job's rows: its own ``leading`` fields, then the detection and
    bookkeeping fields every job writes."""
    import pyarrow as pa

    return pa.schema(
        [
            *leading,
            ("class_id", pa.int32()),
            ("class_name", pa.string()),
            ("confidence", pa.float32()),
            ("x1", pa.float32()),
            ("y1", pa.float32()),
            ("x2", pa.float32()),
            ("y2", pa.float32()),
            ("error", pa.string()),
            ("model", pa.string()),
            ("job_id", pa.string()),
            ("predicted_at", pa.timestamp("us", tz="UTC")),
        ]
    )


def spark_ddl(schema: Any) -> str:
    """The Spark DDL of an Arrow schema made of the types :func:`result_schema` uses.

    Example:
        >>> import pyarrow as pa
        >>> spark_ddl(pa.schema([("frame", pa.int32()), ("path", pa.string())]))
        'frame int, path string'
    """
    import pyarrow as pa

    names = {pa.string(): "string", pa.int32(): "int", pa.float32(): "float", pa.float64(): "double"}
    return ", ".join(
        f"{field.name} {'timestamp' if pa.types.is_timestamp(field.type) else names[field.type]}"
        for field in schema
    )


_DETECTORS: dict[str, Any] = {}


def detector_for(model: str):
    from nexus.inference.detector import Detector

    if model not in _DETECTORS:  # once per Python worker, reused by every partition it runs
        _DETECTORS[model] = Detector.from_path(model)
    return _DETECTORS[model]


def spark_session(master: str, app_name: str = "nexus-batch"):
    """A Spark session on ``master`` using this interpreter for Python workers, UI off."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise BatchError("Spark is not installed: pip install 'nexus-ai-platform[spark]'") from error
    return (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .getOrCreate()
    )


def spark_session_for(master: str) -> tuple[Any, bool]:
    """The active Spark session of this process if there is one, else a new one on ``master``;
    returns ``(session, created)`` (the creator stops it)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:
        raise BatchError("Spark is not installed: pip install 'nexus-ai-platform[spark]'") from error
    active = SparkSession.getActiveSession()
    if active is not None:
        return active, False
    return spark_session(master), True


def commit_staged(staged: Any, table: Path, mode: WriteMode) -> int:
    """Commit a staged Parquet dataset to the Delta table at ``table`` in one transaction, streaming
    its batches; returns the table's new version."""
    from deltalake import DeltaTable, write_deltalake

    table.mkdir(parents=True, exist_ok=True)
    write_deltalake(str(table), staged.scanner().to_reader(), mode=mode)
    return DeltaTable(str(table)).version()


def check_table(table: Path) -> None:
    """Refuse a table path that is a file, or a non-empty folder that is not a Delta table."""
    if table.exists() and not table.is_dir():
        raise BatchError("the Delta table path is a file, not a folder", path=table)
    if table.is_dir() and any(table.iterdir()) and not (table / "_delta_log").is_dir():
        raise BatchError("folder exists, is not empty and is not a Delta table; pick another", path=table)


@dataclass(frozen=True)
class JobTarget:
    """A job's resolved model file, Delta table folder, id and staging folder."""

    model: str
    table: Path
    job_id: str
    staging: Path


def prepare_job(table: str | Path, model: str | Path, job_id: str | None) -> JobTarget:
    """Check the table path and load the model once on the driver, so a bad model or table fails
    with its own message before Spark starts."""
    from nexus.serving.model_source import ModelSource

    resolved_table = Path(table).resolve()
    check_table(resolved_table)
    resolved_model = str(ModelSource.parse(model).resolve())
    detector_for(resolved_model)
    job_id = job_id or uuid.uuid4().hex[:12]
    staging = resolved_table.parent / f".{resolved_table.name}.staging-{job_id}"
    return JobTarget(resolved_model, resolved_table, job_id, staging)


def stage_rows(spark: Any, master: str, staging: Path, build: Callable[[Any], Any]) -> None:
    """Write the DataFrame ``build(session)`` returns as Parquet to ``staging``, on ``spark``, the
    active session, or a new one on ``master`` (stopped afterwards); nothing is left on failure."""
    spark, own_session = (spark, False) if spark is not None else spark_session_for(master)
    try:
        build(spark).write.mode("overwrite").parquet(str(staging))
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if own_session:
            spark.stop()
