"""PyTorch backend for Ultralytics ``.pt`` weights: FP32 on CPU, FP16 + CUDA graphs on a GPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nexus.errors import ModelLoadError
from nexus.inference.metadata import ModelMetadata
from nexus.offline import ensure_offline


def load_ultralytics_checkpoint(path: str | Path, device: str = "cpu"):
    """Load and fuse an Ultralytics checkpoint; a clear ``ModelLoadError`` for anything else."""
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError("no such weights file", path=path)
    ensure_offline()
    from ultralytics.nn.tasks import load_checkpoint

    try:
        model, _ = load_checkpoint(str(path), device=device, fuse=True)
    except Exception as error:  # torch.load raises many types for non-checkpoints
        raise ModelLoadError(
            f"not an Ultralytics/PyTorch checkpoint ({type(error).__name__}: {str(error)[:120]})", path=path
        ) from error
    if not hasattr(model, "names") or not hasattr(model, "stride"):
        raise ModelLoadError("checkpoint holds no YOLO model (no class names or strides)", path=path)
    return model


class TorchBackend:
    """Runs Ultralytics weights with PyTorch.

    On CUDA the model runs in FP16, channels-last, and each input shape is captured once as a CUDA
    graph and replayed (launch overhead dominates small YOLO models otherwise).

    Example:
        >>> backend = TorchBackend("best.pt")  # doctest: +SKIP
    """

    def __init__(
        self, path: str | Path, device: str = "cpu", half: bool | None = None, cuda_graphs: bool | None = None
    ) -> None:
        import torch

        self._torch = torch
        if device != "cpu" and not torch.cuda.is_available():
            raise ModelLoadError(f"device {device!r} asked for but CUDA is not available; pass --device cpu")
        self.device = torch.device("cpu" if device == "cpu" else f"cuda:{device.removeprefix('cuda:')}")
        on_gpu = self.device.type == "cuda"
        self.half = on_gpu if half is None else half
        self.cuda_graphs = on_gpu if cuda_graphs is None else (cuda_graphs and on_gpu)
        model = load_ultralytics_checkpoint(path, device=str(self.device)).eval()
        if self.half:
            model = model.half()
        if on_gpu:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        train_args = getattr(model, "args", {}) or {}
        imgsz = train_args.get("imgsz", 640) if isinstance(train_args, dict) else 640
        imgsz = (imgsz, imgsz) if isinstance(imgsz, int) else tuple(imgsz)
        names = model.names if isinstance(model.names, dict) else dict(enumerate(model.names))
        self.metadata = ModelMetadata(
            names={int(k): str(v) for k, v in names.items()},
            imgsz=(int(imgsz[0]), int(imgsz[1])),
            stride=int(max(int(model.stride.max()), 32)),
            task=getattr(model, "task", "detect"),
            precision="fp16" if self.half else "fp32",
        )
        self.input_dtype = np.float16 if self.half else np.float32
        self.dynamic_shape = True
        self.name = (
            f"torch:{self.device}{':fp16' if self.half else ''}{':cudagraph' if self.cuda_graphs else ''}"
        )
        self._graphs: dict[tuple[int, ...], tuple[object, object, object]] = {}

    def _forward(self, tensor):
        output = self.model(tensor)
        head = output[0] if isinstance(output, (list, tuple)) else output
        if isinstance(head, (list, tuple)):
            return head[0], head[1]
        return head, None

    def _graph_for(self, shape: tuple[int, ...]):
        torch = self._torch
        if shape not in self._graphs:
            static_input = torch.zeros(
                shape, device=self.device, dtype=torch.half if self.half else torch.float
            )
            static_input = static_input.contiguous(memory_format=torch.channels_last)
            stream = torch.cuda.Stream()
            stream.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(3):  # warm-up before capture, as CUDA graphs require
                    self._forward(static_input)
            torch.cuda.current_stream().wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                static_output = self._forward(static_input)
            self._graphs[shape] = (graph, static_input, static_output)
        return self._graphs[shape]

    def infer_tensor(self, tensor):
        """Run a batch already on the model's device (the GPU serving path); returns torch tensors."""
        torch = self._torch
        if self.cuda_graphs:
            graph, static_input, (predictions, protos) = self._graph_for(tuple(tensor.shape))
            static_input.copy_(tensor)
            graph.replay()
            return predictions.clone(), None if protos is None else protos.clone()
        with torch.inference_mode():
            return self._forward(tensor.to(self.device, torch.half if self.half else torch.float))

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        tensor = self._torch.from_numpy(np.ascontiguousarray(batch)).to(self.device)
        return _host_arrays(*self.infer_tensor(tensor))

    def infer_pixels(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Run letterboxed ``uint8`` pixels ``(B, 3, H, W)``: they travel to the device as bytes (a
        quarter of FP32's, half of FP16's) and are scaled to ``[0, 1]`` there, as Ultralytics does."""
        torch = self._torch
        tensor = torch.from_numpy(np.ascontiguousarray(pixels)).to(self.device)
        scaled = tensor.to(torch.half if self.half else torch.float).div_(255)
        return _host_arrays(*self.infer_tensor(scaled))


def _host_arrays(predictions, protos) -> tuple[np.ndarray, np.ndarray | None]:
    """A model's output tensors as FP32 NumPy arrays on the host."""
    return (
        predictions.float().cpu().numpy(),
        None if protos is None else protos.float().cpu().numpy(),
    )
