"""TensorRT backend for stamped ``.engine`` files (GPU only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nexus.errors import ExportError, ModelLoadError
from nexus.export.tensorrt_engine import check_engine_stamp, current_stamp, read_stamped_engine


class TensorRTBackend:
    """Runs a TensorRT engine built by ``nexus export --format engine`` on this GPU.

    The engine's stamp is checked first: an engine built for another GPU, TensorRT or CUDA version is
    refused with a message naming the differences.
    """

    def __init__(self, path: str | Path, device: str = "0") -> None:
        stamp, metadata, engine_bytes = read_stamped_engine(path)
        try:
            running = current_stamp()
        except ExportError as error:
            raise ModelLoadError(str(error), path=path) from error
        check_engine_stamp(path, stamp, running)
        import tensorrt as trt
        import torch

        self._torch = torch
        self.metadata = metadata
        self.input_dtype = np.float32
        self.dynamic_shape = False
        self.name = f"tensorrt:{running.gpu_name}"
        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        self.engine = runtime.deserialize_cuda_engine(engine_bytes)
        if self.engine is None:
            raise ModelLoadError("TensorRT could not deserialize the engine", path=path)
        self.context = self.engine.create_execution_context()
        self.device = torch.device(f"cuda:{0 if device in ('cpu', '') else device.removeprefix('cuda:')}")
        self.tensor_names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_name = next(
            n for n in self.tensor_names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT
        )
        self.output_names = [n for n in self.tensor_names if n != self.input_name]

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        torch = self._torch
        tensor = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(self.device)
        self.context.set_input_shape(self.input_name, tuple(tensor.shape))
        self.context.set_tensor_address(self.input_name, tensor.data_ptr())
        outputs = []
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            output = torch.empty(shape, dtype=torch.float32, device=self.device)
            self.context.set_tensor_address(name, output.data_ptr())
            outputs.append(output)
        stream = torch.cuda.current_stream(self.device)
        self.context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        predictions = outputs[0].cpu().numpy()
        protos = outputs[1].cpu().numpy() if len(outputs) > 1 else None
        return predictions, protos
