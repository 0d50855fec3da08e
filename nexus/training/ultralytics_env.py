"""Prepare the imported Ultralytics package for an offline, quiet, full-speed training.

``ensure_offline`` must run before Ultralytics is imported; this module then fixes what can only be
fixed on the imported package: its settings (directories under the project's home, every built-in
integration off), the font it would download, its thread count and its log level.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

from nexus.cpu import cpu_count
from nexus.offline import ensure_offline, ultralytics_settings
from nexus.settings import NexusSettings


def prefer_passive_omp_wait() -> None:
    """Default ``OMP_WAIT_POLICY=PASSIVE`` (kept if already set); effective only before torch loads.

    With the default busy-waiting OpenMP threads, torch on 2 threads ran 4-8x slower than on 1
    thread while other processes competed for the 2 cores; with passive waiting it stays close.

    Example:
        >>> prefer_passive_omp_wait()
        >>> os.environ["OMP_WAIT_POLICY"] in {"PASSIVE", "ACTIVE", "passive", "active"}
        True
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def configure_ultralytics(settings: NexusSettings) -> None:
    """Import Ultralytics offline, keep its settings in the project's home and use every core.

    Ultralytics sets torch to ``cpu_count() - 1`` threads (1 on a 2-core machine, which halves
    training speed); its module-level ``NUM_THREADS`` copies are raised to the core count here.

    Example:
        >>> configure_ultralytics(NexusSettings.from_env())  # doctest: +SKIP
    """
    prefer_passive_omp_wait()
    ensure_offline(settings)
    import ultralytics.utils as ul_utils

    # Ultralytics may have been imported before ensure_offline chose its config dir: make sure the
    # font it checks for exists wherever it looks, so it never downloads one.
    font_dir = Path(ul_utils.USER_CONFIG_DIR)
    source = Path(os.environ["YOLO_CONFIG_DIR"]) / "Ultralytics" / "Arial.ttf"
    for name in ("Arial.ttf", "Arial.Unicode.ttf"):
        if not (font_dir / name).exists() and source.exists():
            font_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, font_dir / name)
    wanted = ultralytics_settings(settings.home)
    current = {key: ul_utils.SETTINGS.get(key) for key in wanted}
    if current != wanted:
        ul_utils.SETTINGS.update(wanted)

    threads = settings.torch_threads or cpu_count()
    import ultralytics.data.base as ul_base
    import ultralytics.data.dataset as ul_dataset
    import ultralytics.utils.torch_utils as ul_torch_utils

    for module in (ul_utils, ul_torch_utils, ul_base, ul_dataset):
        module.NUM_THREADS = threads  # type: ignore[attr-defined]


@contextlib.contextmanager
def ultralytics_verbosity(progress: bool) -> Iterator[None]:
    """Show Ultralytics' log and progress bars on the current ``sys.stdout``, or silence them.

    Ultralytics binds its log handler to the ``sys.stdout`` of import time; here it follows the
    current one (so ``contextlib.redirect_stdout`` works). ``progress=False`` keeps only warnings;
    DDP workers inherit ``YOLO_VERBOSE`` from the environment, so it is set for them as well.

    Example:
        >>> with ultralytics_verbosity(progress=False):  # doctest: +SKIP
        ...     model.train(...)
    """
    from ultralytics.utils import LOGGER

    handlers = [h for h in LOGGER.handlers if isinstance(h, logging.StreamHandler)]
    streams = [h.stream for h in handlers]
    level = LOGGER.level
    previous = os.environ.get("YOLO_VERBOSE")
    for handler in handlers:
        handler.stream = sys.stdout  # not setStream(): it flushes the old stream, which may be closed
    if not progress:
        LOGGER.setLevel(logging.WARNING)
        os.environ["YOLO_VERBOSE"] = "False"
    try:
        yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.stream = sys.stdout if getattr(stream, "closed", False) else stream
        LOGGER.setLevel(level)
        if previous is None:
            os.environ.pop("YOLO_VERBOSE", None)
        else:
            os.environ["YOLO_VERBOSE"] = previous
