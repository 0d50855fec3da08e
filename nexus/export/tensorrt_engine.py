"""TensorRT engines, stamped with the GPU, TensorRT and CUDA versions they were built for.

An engine only runs on the GPU model and TensorRT version that built it. Our ``.engine`` file starts
with a small JSON stamp; loading compares it with the running machine and refuses a mismatch with a
message naming both sides, instead of TensorRT's opaque deserialization failure.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nexus.errors import ExportError, ModelLoadError
from nexus.inference.metadata import ModelMetadata

MAGIC = b"NEXUSTRT"
_HEADER = struct.Struct("<8sI")


@dataclass(frozen=True)
class EngineStamp:
    """Where an engine was built: it runs only where these match.

    Attributes:
        gpu_name: e.g. ``NVIDIA H100 80GB HBM3``.
        compute_capability: e.g. ``9.0``.
        tensorrt_version: e.g. ``10.3.0``.
        cuda_version: the CUDA runtime version, e.g. ``12.4``.
    """

    gpu_name: str
    compute_capability: str
    tensorrt_version: str
    cuda_version: str

    def mismatches(self, current: EngineStamp) -> list[str]:
        """Human-readable differences between this (the engine's) stamp and ``current``."""
        problems = []
        for field_name in ("gpu_name", "compute_capability", "tensorrt_version", "cuda_version"):
            built, running = getattr(self, field_name), getattr(current, field_name)
            if built != running:
                problems.append(
                    f"{field_name.replace('_', ' ')}: engine built for {built!r}, this machine has {running!r}"  # noqa: E501
                )
        return problems


def require_tensorrt() -> Any:
    """Import TensorRT or raise a clear ``ExportError``."""
    try:
        import tensorrt
    except ImportError as error:
        raise ExportError(
            "TensorRT is not installed: install the 'tensorrt' package on a machine with an NVIDIA GPU "
            "and CUDA, or export to ONNX (--format onnx) and use the onnxruntime backend"
        ) from error
    return tensorrt


def current_stamp() -> EngineStamp:
    """The stamp of this machine's first GPU and installed TensorRT/CUDA."""
    tensorrt = require_tensorrt()
    import torch

    if not torch.cuda.is_available():
        raise ExportError("TensorRT engines need a CUDA GPU; none is visible on this machine")
    major, minor = torch.cuda.get_device_capability(0)
    return EngineStamp(
        gpu_name=torch.cuda.get_device_name(0),
        compute_capability=f"{major}.{minor}",
        tensorrt_version=tensorrt.__version__,
        cuda_version=str(torch.version.cuda),
    )


def write_stamped_engine(
    path: Path, engine_bytes: bytes, stamp: EngineStamp, metadata: ModelMetadata
) -> Path:
    """Write ``MAGIC | header length | JSON header | engine`` to ``path``."""
    header = json.dumps({"stamp": asdict(stamp), "metadata": metadata.to_onnx_properties()}).encode()
    with open(path, "wb") as handle:
        handle.write(_HEADER.pack(MAGIC, len(header)))
        handle.write(header)
        handle.write(engine_bytes)
    return path


def read_stamped_engine(path: str | Path) -> tuple[EngineStamp, ModelMetadata, bytes]:
    """Split a stamped engine file into its stamp, model metadata and raw engine bytes."""
    path = Path(path)
    data = path.read_bytes()
    if len(data) < _HEADER.size or data[: len(MAGIC)] != MAGIC:
        raise ModelLoadError(
            "not a NexusAI TensorRT engine (no stamp); rebuild it with `nexus export`", path=path
        )
    _, header_length = _HEADER.unpack_from(data)
    try:
        header = json.loads(data[_HEADER.size : _HEADER.size + header_length])
        stamp = EngineStamp(**header["stamp"])
    except (ValueError, KeyError, TypeError) as error:
        raise ModelLoadError("engine stamp is corrupt", path=path) from error
    metadata = ModelMetadata.from_onnx_properties(header["metadata"])
    return stamp, metadata, data[_HEADER.size + header_length :]


def check_engine_stamp(path: str | Path, engine_stamp: EngineStamp, running: EngineStamp) -> None:
    """Refuse an engine built for another GPU or TensorRT/CUDA version, naming each difference."""
    problems = engine_stamp.mismatches(running)
    if problems:
        raise ModelLoadError(
            "TensorRT engine does not match this machine (" + "; ".join(problems) + "); rebuild it here "
            "with `nexus export --format engine`",
            path=path,
        )


def build_tensorrt_engine(
    onnx_path: str | Path,
    out_path: str | Path,
    half: bool = True,
    max_batch: int = 32,
    workspace_gib: int = 4,
) -> Path:
    """Build a TensorRT engine from an ONNX model (dynamic batch 1..``max_batch``), stamped.

    Raises:
        ExportError: TensorRT or a GPU is missing, or the ONNX cannot be parsed/built.
    """
    from nexus.export.onnx_export import read_onnx_metadata

    stamp = current_stamp()
    trt = require_tensorrt()
    metadata = read_onnx_metadata(onnx_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT could not parse the ONNX model: {errors}", path=onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_gib << 30)
    if half and builder.platform_has_fast_fp16:
        config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    height, width = metadata.imgsz
    name = network.get_input(0).name
    profile.set_shape(
        name, (1, 3, height, width), (max(1, max_batch // 2), 3, height, width), (max_batch, 3, height, width)
    )
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ExportError("TensorRT failed to build the engine (see the TensorRT log above)", path=onnx_path)
    precision = "fp16" if half else "fp32"
    engine_metadata = ModelMetadata(**{**metadata.to_dict(), "precision": precision, "dynamic": False})
    return write_stamped_engine(Path(out_path), bytes(serialized), stamp, engine_metadata)
