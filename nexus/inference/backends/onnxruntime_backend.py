"""ONNX Runtime backend (CPU; CUDA and TensorRT execution providers when installed)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from nexus.cpu import cpu_count
from nexus.errors import ModelLoadError
from nexus.inference.metadata import ModelMetadata

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

import onnxruntime as ort

_GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")


def select_providers(device: str = "cpu") -> list[str | tuple[str, dict[str, str]]]:
    """Execution providers for ``device`` (``cpu`` or a CUDA index): GPU ones first, on that GPU, when
    asked for and installed; CPU last."""
    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    gpu = {"device_id": device.removeprefix("cuda:")}
    chosen: list[str | tuple[str, dict[str, str]]] = [(p, gpu) for p in _GPU_PROVIDERS if p in available]
    if not chosen:
        raise ModelLoadError(
            f"device {device!r} needs onnxruntime-gpu (CUDA/TensorRT providers); installed providers are "
            f"{', '.join(available)}; pass --device cpu"
        )
    return [*chosen, "CPUExecutionProvider"]


def _session_options(intra_op_threads: int | None, spinning: bool = True) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    # Threads spin between the operators of a run (fast hand-offs) but stop when it ends: a pool
    # spinning on after the run took a core from the code that answers the request (0.2-0.4 ms per
    # request on 2 cores) and from the other requests' decoding under load.
    options.add_session_config_entry("session.force_spinning_stop", "1")
    return options


class OnnxRuntimeBackend:
    """Runs an ONNX detection/segmentation model exported by us or by Ultralytics.

    With ``batch_shards=N`` (CPU only) the backend holds ``N`` extra sessions, each with its share of
    the CPUs (like Triton's CPU instance groups). A small model parallelizes poorly inside one
    forward pass, and on a busy CPU the threads of one pass wait for each other, so passes side by
    side give more images per second. ``infer`` is thread-safe: each call takes the shard sessions
    that are free (waiting for one when none is), splits its batch across them with ``spread=True``
    or runs it in one with ``spread=False``, so ``N`` callers can run batches at the same time
    (``concurrent_batches``). A single image that finds every shard free runs in the main session
    with all threads, for the lowest latency.

    Args:
        path: the ``.onnx`` file.
        device: ``cpu`` or a CUDA device (CUDA/TensorRT execution providers).
        intra_op_threads: threads of the main session (ONNX Runtime's default: one per core).
        batch_shards: sessions that share the images of one batch (1: the main session runs it all).

    Example:
        >>> backend = OnnxRuntimeBackend("model.onnx", batch_shards=2)  # doctest: +SKIP
        >>> predictions, protos = backend.infer(np.zeros((8, 3, 160, 160), np.float32))  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "cpu",
        intra_op_threads: int | None = None,
        batch_shards: int = 1,
    ) -> None:
        path = Path(path)
        if batch_shards < 1:
            raise ValueError(f"batch_shards must be at least 1, got {batch_shards}")
        if batch_shards > 1 and device != "cpu":
            raise ValueError(
                f"batch_shards applies to the CPU only, got device {device!r}; pass batch_shards=1 "
                "(a GPU runs a whole batch in one pass)"
            )
        if not path.is_file():
            raise ModelLoadError("no such model file", path=path)
        providers = select_providers(device)
        if intra_op_threads is None and cpu_count() < (os.cpu_count() or 1):
            # ONNX Runtime sizes its pool from the machine's cores, not from a container's CPU limit
            intra_op_threads = cpu_count()
        try:
            self.session = ort.InferenceSession(
                str(path), _session_options(intra_op_threads), providers=providers
            )
        except ModelLoadError:
            raise
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            first_line = (
                str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            )
            raise ModelLoadError(f"not a loadable ONNX model ({first_line})", path=path) from error
        properties = self.session.get_modelmeta().custom_metadata_map
        self.metadata = ModelMetadata.from_onnx_properties(properties)
        model_input = self.session.get_inputs()[0]
        self.input_name = model_input.name
        self.input_dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
        self.dynamic_shape = any(not isinstance(dim, int) for dim in model_input.shape[2:])
        batch_dim = model_input.shape[0]
        self.max_batch = batch_dim if isinstance(batch_dim, int) else None
        self.output_names = [output.name for output in self.session.get_outputs()]
        self.name = f"onnxruntime:{self.session.get_providers()[0]}"
        self.batch_shards = batch_shards if self.max_batch is None else 1
        self._shard_sessions: list[ort.InferenceSession] = []
        self._shard_pool: ThreadPoolExecutor | None = None
        self._free_shards = list(range(self.batch_shards))
        self._shard_freed = threading.Condition()
        if self.batch_shards > 1:
            threads = max(1, (intra_op_threads or cpu_count()) // self.batch_shards)
            # No spinning: shards that finish first must not burn the CPU the others still need.
            shard_options = _session_options(threads, spinning=False)
            shard_options.inter_op_num_threads = 1
            self._shard_sessions = [
                ort.InferenceSession(str(path), shard_options, providers=providers)
                for _ in range(self.batch_shards)
            ]
            self._shard_pool = ThreadPoolExecutor(self.batch_shards - 1, thread_name_prefix="nexus-ort-shard")

    @property
    def concurrent_batches(self) -> int:
        """How many ``infer`` calls can run at once, each on its own shard session."""
        return len(self._shard_sessions) or 1

    def infer(self, batch: np.ndarray, spread: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """Run the model on ``batch``.

        Args:
            batch: ``(B, 3, H, W)`` in ``input_dtype``'s range.
            spread: split the batch across every free shard session (the lowest latency when
                nothing else waits); ``False`` runs it in one, leaving the others to concurrent
                callers (the highest throughput under load). Without shards it changes nothing.
        """
        if self.max_batch is not None and len(batch) != self.max_batch:
            outputs = [self._run(batch[i : i + 1]) for i in range(len(batch))]
            return _joined(outputs)
        if self._shard_pool is None:
            return self._run(batch)
        wanted = (self.batch_shards if len(batch) == 1 else len(batch)) if spread else 1
        taken = self._take_shards(wanted)
        try:
            if len(batch) == 1 and len(taken) == self.batch_shards:
                return self._run(batch)  # every core is this call's: the main session uses them all
            return self._run_sharded(batch, taken)
        finally:
            with self._shard_freed:
                self._free_shards.extend(taken)
                self._shard_freed.notify_all()

    def _take_shards(self, wanted: int) -> list[int]:
        """Up to ``wanted`` free shard sessions, at least one (waiting for it when all are busy)."""
        with self._shard_freed:
            while not self._free_shards:
                self._shard_freed.wait()
            taken = self._free_shards[:wanted]
            del self._free_shards[:wanted]
            return taken

    def _run_sharded(self, batch: np.ndarray, shards: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
        assert self._shard_pool is not None
        slices = np.array_split(batch, min(len(batch), len(shards)))
        sessions = [self._shard_sessions[index] for index in shards]
        pending = [
            self._shard_pool.submit(self._run, piece, session)
            for piece, session in zip(slices[1:], sessions[1:], strict=False)
        ]
        outputs = [self._run(slices[0], sessions[0])]  # this thread runs the first slice
        outputs += [future.result() for future in pending]
        return _joined(outputs)

    def _run(
        self, batch: np.ndarray, session: ort.InferenceSession | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        outputs = (session or self.session).run(
            self.output_names, {self.input_name: batch.astype(self.input_dtype, copy=False)}
        )
        predictions = outputs[0].astype(np.float32, copy=False)
        protos = outputs[1].astype(np.float32, copy=False) if len(outputs) > 1 else None
        return predictions, protos


def _joined(outputs: list[tuple[np.ndarray, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray | None]:
    """The outputs of consecutive slices of one batch, concatenated back into one."""
    predictions = np.concatenate([o[0] for o in outputs])
    protos = None if outputs[0][1] is None else np.concatenate([o[1] for o in outputs])
    return predictions, protos
