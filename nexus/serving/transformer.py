"""The split deployment: a transformer (decode, letterbox, NMS) in front of a tensor predictor.

The transformer takes the same v1/v2 image requests as ``DetectionPredictor``, letterboxes them into
a ``UINT8 [N,3,H,W]`` RGB tensor and sends it to the predictor as a v2 *binary* tensor, asking for
binary outputs (``binary_data_output``). Pixels travel as bytes, a quarter of FP32's size (1.2 MB
for a 640-px image instead of 4.9 MB); the predictor scales them to ``[0, 1]`` exactly as
``letterbox_batch`` would. It makes that call itself: KServe 0.21's client sends binary
tensors with two Content-Type headers, and JSON tensors cost seconds per 640-px image (1.2 million
numbers out, 0.7 million back). The predictor runs the model only and answers the raw head outputs
(``predictions``, ``protos`` for segmentation); the transformer decodes them into detections. This
lets pre/post-processing scale on CPU nodes while the predictor sits on a GPU node.

Behind a KServe canary the transformer's calls reach either predictor revision, so every answer
names the revision that ran (``model_version``) and a digest of its metadata; the transformer
labels its response with that version and, when the digest differs from what it knows, decodes
with the class names the predictor sent along (it asks for them by sending its own digest).

Example:
    python -m serving --mode tensor-predictor --model best.onnx --port 8081
    python -m serving --mode transformer --predictor-host 127.0.0.1:8081 --port 8080
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import kserve
import numpy as np
import orjson
from kserve.errors import InferenceError, InvalidInput
from kserve.protocol.infer_type import InferInput, InferOutput, InferRequest, InferResponse

from nexus.cpu import cpu_count
from nexus.errors import NexusError
from nexus.inference.detector import Detector
from nexus.inference.metadata import ModelMetadata
from nexus.serving.batching import DynamicBatcher
from nexus.serving.body_limit import DEFAULT_MAX_REQUEST_BYTES
from nexus.serving.config import BatchingConfig, PredictorConfig
from nexus.serving.metrics import PredictorMetrics
from nexus.serving.model_source import ModelSource
from nexus.serving.protocol import (
    JsonInferResponse,
    build_v1_response,
    build_v2_response,
    check_class_ids,
    decode_v2_response,
    image_result,
    model_io_spec,
    no_explainer,
    parse_v1,
    parse_v2,
    wants_binary_outputs,
)
from nexus.vision.image_io import (
    MAX_IMAGE_PIXELS,
    decode_image_bytes,
    decode_image_for_input,
    pixels_and_shape,
    shrink_for_input,
)
from nexus.vision.letterbox import scale_pixels


class _MetadataOnlyBackend:
    """Lets the transformer reuse ``Detector.preprocess``/``postprocess`` without a model."""

    def __init__(self, metadata: ModelMetadata) -> None:
        self.metadata = metadata
        self.input_dtype = np.uint8  # letterboxed pixels travel unscaled; the predictor scales them
        self.dynamic_shape = True
        self.name = "remote"

    def infer(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise RuntimeError("the transformer never runs the model itself: the predictor service does")


DIGEST_PARAMETER = "nexus_metadata_digest"
METADATA_PARAMETER = "nexus_metadata"


def metadata_parameters(metadata: ModelMetadata) -> dict[str, Any]:
    """What a transformer needs of the model: class names, task, input size and stride."""
    return {
        "names": {str(k): v for k, v in metadata.names.items()},
        "task": metadata.task,
        "imgsz": list(metadata.imgsz),
        "stride": metadata.stride,
    }


def metadata_digest(parameters: dict[str, Any]) -> str:
    """A short, order-independent fingerprint of :func:`metadata_parameters`."""
    return hashlib.sha256(orjson.dumps(parameters, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


def metadata_from_parameters(parameters: dict[str, Any]) -> ModelMetadata:
    return ModelMetadata(
        names={int(k): str(v) for k, v in parameters["names"].items()},
        imgsz=tuple(parameters.get("imgsz", (640, 640))),
        stride=int(parameters.get("stride", 32)),
        task=parameters.get("task", "detect"),
    )


class TensorPredictor(kserve.Model):
    """Runs the model on letterboxed ``[N,3,H,W]`` RGB tensors; answers raw head outputs.

    Inputs are ``UINT8`` pixels (what the transformer sends; scaled to ``[0, 1]`` here, on the GPU
    for a PyTorch model so that a quarter of FP32's bytes crosses to the device) or ``FP32`` already
    scaled.

    Concurrent requests are batched: every image of a request joins the predictor's queue, and each
    forward pass takes what waits there (up to ``max_batch_size``; images of one input size run
    together), so a busy GPU sees large batches while a lone request runs at once.
    """

    def __init__(
        self,
        name: str,
        model_uri: str,
        device: str = "cpu",
        version: str = "v1",
        batching: BatchingConfig | None = None,
    ) -> None:
        super().__init__(name)
        self.model_uri, self.device, self.version = model_uri, device, version
        self.batching = batching or BatchingConfig()
        self.detector: Detector | None = None
        self.batcher: DynamicBatcher | None = None
        # queue_wait, inference, batch sizes and outcomes; decoding and NMS are the transformer's
        self.metrics = PredictorMetrics(name, version)

    def load(self) -> bool:
        path = ModelSource.parse(self.model_uri).resolve(device=self.device)
        shards = self.batching.shards_for(path, self.device, cpu_count())
        self.detector = Detector.from_path(path, self.device, batch_shards=shards)
        self.batcher = DynamicBatcher(
            self._run_images,
            self.batching,
            on_batch=self.metrics.observe_batch,
            concurrency=getattr(self.detector.backend, "concurrent_batches", 1),
        )
        self.metadata = metadata_parameters(self.detector.metadata)
        self.digest = metadata_digest(self.metadata)
        self.ready = True
        return True

    def _run_images(
        self, images: Sequence[np.ndarray], _options: Sequence[Any], spread: bool | None = None
    ) -> list[tuple]:
        """One forward pass per input size over ``(3, H, W)`` images: ``(predictions, protos)`` each
        (``spread`` as the batcher says; ``None``: the backend's default)."""
        assert self.detector is not None
        backend = self.detector.backend
        results: list[tuple] = [()] * len(images)
        groups: dict[tuple, list[int]] = {}
        for index, image in enumerate(images):
            groups.setdefault((image.shape, image.dtype), []).append(index)
        for indices in groups.values():
            stacked = np.stack([images[index] for index in indices])
            start = time.perf_counter()
            if stacked.dtype == np.uint8 and hasattr(backend, "infer_pixels"):
                predictions, protos = backend.infer_pixels(stacked)  # scaled on the GPU
            else:
                if stacked.dtype == np.uint8:
                    batch = scale_pixels(stacked, backend.input_dtype)
                else:
                    batch = stacked.astype(backend.input_dtype, copy=False)
                if spread is None:
                    predictions, protos = backend.infer(batch)
                else:
                    predictions, protos = backend.infer(batch, spread=spread)
            self.metrics.stage["inference"].observe(time.perf_counter() - start)
            for row, index in enumerate(indices):
                results[index] = (predictions[row], None if protos is None else protos[row])
        return results

    def stop(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    async def __call__(self, body, headers=None, verb=kserve.model.InferenceVerb.PREDICT):
        if verb == kserve.model.InferenceVerb.EXPLAIN:
            return await self.metrics.count_outcome(no_explainer(self.name))
        return await self.metrics.count_outcome(super().__call__(body, headers, verb))

    def describe(self) -> dict[str, Any]:
        assert self.detector is not None
        return {
            **self.metadata,
            "backend": self.detector.backend.name,
            "version": self.version,
            "input_datatypes": ["UINT8", "FP32"],
            "batch_shards": getattr(self.detector.backend, "batch_shards", 1),
        }

    def get_input_types(self) -> list[dict]:
        # FP32 in [0, 1] is accepted as well (describe(): input_datatypes)
        return [{"name": "input", "datatype": "UINT8", "shape": [-1, 3, -1, -1]}]

    def get_output_types(self) -> list[dict]:
        return [
            {"name": "predictions", "datatype": "FP32", "shape": [-1, -1, -1]},
            {"name": "protos", "datatype": "FP32", "shape": [-1, -1, -1, -1]},
        ]

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> InferResponse:
        assert self.detector is not None
        if not isinstance(payload, InferRequest) or len(payload.inputs) != 1:
            raise InvalidInput("expected a v2 request with one UINT8 or FP32 [N,3,H,W] input tensor")
        tensor = payload.inputs[0]
        if tensor.datatype not in ("UINT8", "FP32"):
            raise InvalidInput(
                f"input {tensor.name!r}: expected UINT8 pixels or FP32 in [0, 1], got {tensor.datatype}"
            )
        try:
            batch = tensor.as_numpy()
        except OverflowError as error:
            raise InvalidInput(
                f"input {tensor.name!r}: UINT8 values must be within 0..255 ({error})"
            ) from error
        except (ValueError, TypeError) as error:
            raise InvalidInput(f"input {tensor.name!r}: data does not match its shape: {error}") from error
        if batch.ndim != 4 or batch.shape[1] != 3 or 0 in batch.shape:
            raise InvalidInput(f"input {tensor.name!r}: expected shape [N,3,H,W], got {list(batch.shape)}")
        if batch.dtype == np.float32 and not 0.0 <= batch.min() <= batch.max() <= 1.0:  # NaN fails too
            raise InvalidInput(
                f"input {tensor.name!r}: FP32 pixels must be finite values in [0, 1] (pixel / 255), "
                f"got values from {batch.min()} to {batch.max()}"
            )
        stride = self.detector.metadata.stride
        if batch.shape[2] % stride or batch.shape[3] % stride:
            raise InvalidInput(
                f"input {tensor.name!r}: H and W must be multiples of the model's stride {stride} "
                f"(letterbox to it), got {batch.shape[2]}x{batch.shape[3]}"
            )
        assert self.batcher is not None
        answers = await self.batcher.submit_many(list(batch), None)
        predictions = np.stack([answer[0] for answer in answers])
        protos = None if answers[0][1] is None else np.stack([answer[1] for answer in answers])
        outputs = [
            InferOutput("predictions", list(predictions.shape), "FP32", predictions.astype(np.float32))
        ]
        if protos is not None:
            outputs.append(InferOutput("protos", list(protos.shape), "FP32", protos.astype(np.float32)))
        parameters: dict[str, Any] = {DIGEST_PARAMETER: self.digest}
        if (payload.parameters or {}).get(DIGEST_PARAMETER) not in (None, self.digest):
            # the caller decodes with other class names (another revision's): send ours along
            parameters[METADATA_PARAMETER] = orjson.dumps(self.metadata).decode()
        return JsonInferResponse(
            response_id=payload.id or "",
            model_name=self.name,
            infer_outputs=outputs,
            model_version=self.version,
            parameters=parameters,
            use_binary_outputs=wants_binary_outputs(payload),
        )


def fetch_metadata(
    predictor_host: str, model_name: str, wait_s: float = 0.0, timeout_s: float = 30.0
) -> ModelMetadata:
    """Class names, input size and task from the predictor's ``GET /v2/models/{name}``.

    On a cluster the transformer often starts before the predictor has loaded its model: connection
    errors, 404 and 5xx answers are retried for ``wait_s`` seconds.
    """
    url = f"http://{predictor_host}/v2/models/{model_name}"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            reply = httpx.get(url, timeout=timeout_s)
        except httpx.HTTPError as error:
            problem = f"{type(error).__name__}: {error}"
        else:
            if reply.status_code == 200:
                body = reply.json()
                break
            problem = f"HTTP {reply.status_code}: {_error_of(reply)}"
            if reply.status_code != 404 and reply.status_code < 500:
                raise NexusError(f"cannot read model metadata from {url}: {problem}")
        if time.monotonic() >= deadline:
            waited = f" within {wait_s:.0f} s" if wait_s else ""
            raise NexusError(f"cannot read model metadata from {url}{waited}: {problem}")
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    parameters = body.get("parameters") or {}
    if "names" not in parameters:
        raise NexusError(f"{url} lists no class names; start the predictor with --mode tensor-predictor")
    return metadata_from_parameters(parameters)


class DetectionTransformer(kserve.Model):
    """Decode + letterbox before, NMS (+ masks) after a remote ``TensorPredictor``."""

    def __init__(
        self,
        name: str,
        predictor_host: str,
        imgsz: int | None = None,
        version: str = "v1",
        predictor_wait_s: float = 0.0,
        scaled_jpeg_decode: bool = True,
        max_images_per_request: int = PredictorConfig.max_images_per_request,
    ) -> None:
        super().__init__(name)
        self.predictor_host, self.imgsz, self.version = predictor_host, imgsz, version
        self.predictor_wait_s = predictor_wait_s
        self.scaled_jpeg_decode = scaled_jpeg_decode  # as PredictorConfig.scaled_jpeg_decode
        self.max_images_per_request = max_images_per_request  # as the single predictor's
        # decode, preprocess (letterbox), inference (the predictor's round trip), postprocess (NMS)
        self.metrics = PredictorMetrics(name, version)
        self.detector: Detector | None = None
        self.digest = ""
        self._decoders: dict[str, Detector] = {}  # metadata digest -> detector, one per predictor revision
        self._pending: dict[str, tuple[Any, ...]] = {}

    def load(self) -> bool:
        metadata = fetch_metadata(self.predictor_host, self.name, wait_s=self.predictor_wait_s)
        self.detector = Detector(_MetadataOnlyBackend(metadata))
        self.digest = metadata_digest(metadata_parameters(metadata))
        self._decoders = {self.digest: self.detector}
        self.ready = True
        return True

    async def __call__(self, body, headers=None, verb=kserve.model.InferenceVerb.PREDICT):
        if verb == kserve.model.InferenceVerb.EXPLAIN:
            return await self.metrics.count_outcome(no_explainer(self.name))
        return await self.metrics.count_outcome(super().__call__(body, headers, verb))

    def describe(self) -> dict[str, Any]:
        """The predictor's class names, task and input size as this transformer learned them."""
        assert self.detector is not None
        return {
            **metadata_parameters(self.detector.metadata),
            "backend": f"remote:{self.predictor_host}",
            "version": self.version,
            "predictor_host": self.predictor_host,
            "scaled_jpeg_decode": self.scaled_jpeg_decode,
        }

    def _decoder_for(self, response: InferResponse) -> Detector:
        """The detector holding the class names of the predictor revision that answered."""
        parameters = response.parameters or {}
        digest = parameters.get(DIGEST_PARAMETER, self.digest)
        if digest not in self._decoders:
            if METADATA_PARAMETER not in parameters:
                raise InferenceError(
                    f"the predictor answered with model metadata {digest} but did not send it; "
                    "run the predictor with --mode tensor-predictor of this release"
                )
            metadata = metadata_from_parameters(orjson.loads(parameters[METADATA_PARAMETER]))
            self._decoders[digest] = Detector(_MetadataOnlyBackend(metadata))
        return self._decoders[digest]

    def get_input_types(self) -> list[dict]:
        assert self.detector is not None
        return model_io_spec(self.detector.metadata)[0]

    def get_output_types(self) -> list[dict]:
        assert self.detector is not None
        return model_io_spec(self.detector.metadata)[1]

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> InferRequest:
        assert self.detector is not None
        limit = self.max_images_per_request
        parsed = parse_v2(payload, limit) if isinstance(payload, InferRequest) else parse_v1(payload, limit)
        detector = self.detector
        check_class_ids(parsed.options, detector.metadata)

        def decode_and_letterbox() -> tuple[np.ndarray, list, list[tuple[int, int]]]:
            letterbox_shape = detector.input_size(self.imgsz)
            input_shape = letterbox_shape if self.scaled_jpeg_decode else None
            images, shapes = [], []
            for index, image in enumerate(parsed.images):
                if not isinstance(image, np.ndarray):
                    start = time.perf_counter()
                    if input_shape is None:
                        image = decode_image_bytes(image, f"image {index}", MAX_IMAGE_PIXELS)
                    else:
                        image = decode_image_for_input(image, input_shape, f"image {index}", MAX_IMAGE_PIXELS)
                    image = shrink_for_input(image, letterbox_shape)  # the request keeps no whole decodes
                    self.metrics.stage["decode"].observe(time.perf_counter() - start)  # per image
                pixels, shape = pixels_and_shape(image)
                images.append(pixels)
                shapes.append(shape)
            start = time.perf_counter()
            batch, geometries = detector.preprocess(images, self.imgsz, shapes)
            self.metrics.stage["preprocess"].observe(time.perf_counter() - start)
            return batch, geometries, shapes

        try:
            # off the event loop: concurrent requests decode on all cores while others wait on the predictor
            batch, geometries, shapes = await asyncio.get_running_loop().run_in_executor(
                self._pool, decode_and_letterbox
            )
        except NexusError as error:
            raise InvalidInput(str(error)) from error
        request_id = uuid.uuid4().hex
        parsed.images = []  # the encoded bytes are not needed past this point
        self._pending[request_id] = (geometries, parsed, shapes)
        tensor = InferInput("input", list(batch.shape), "UINT8")
        tensor.set_data_from_numpy(batch, binary_data=True)
        return InferRequest(model_name=self.name, infer_inputs=[tensor], request_id=request_id)

    async def predict(self, payload: Any, headers: dict[str, str] | None = None) -> InferResponse:
        """Send the letterboxed tensor to the predictor as binary data; binary outputs back."""
        tensor = payload.inputs[0]
        raw = tensor._raw_data
        header = orjson.dumps(
            {
                "id": payload.id,
                "inputs": [
                    {
                        "name": tensor.name,
                        "shape": list(tensor.shape),
                        "datatype": tensor.datatype,
                        "parameters": {"binary_data_size": len(raw)},
                    }
                ],
                "parameters": {"binary_data_output": True, DIGEST_PARAMETER: self.digest},
            }
        )
        url = f"http://{self.predictor_host}/v2/models/{self.name}/infer"
        start = time.perf_counter()
        try:
            try:
                reply = await self._client.post(
                    url,
                    content=header + raw,
                    headers={
                        "content-type": "application/octet-stream",
                        "inference-header-content-length": str(len(header)),
                    },
                )
            except httpx.HTTPError as error:
                raise InferenceError(
                    f"the predictor at {self.predictor_host} did not answer: {error}"
                ) from error
            if reply.status_code != 200:
                message = _error_of(reply)
                if 400 <= reply.status_code < 500:
                    raise InvalidInput(f"the predictor refused the tensor ({reply.status_code}): {message}")
                raise InferenceError(f"the predictor failed ({reply.status_code}): {message}")
            self.metrics.stage["inference"].observe(time.perf_counter() - start)
            try:
                return decode_v2_response(
                    reply.content, reply.headers.get("inference-header-content-length"), self.name
                )
            except (ValueError, KeyError, TypeError) as error:
                raise InferenceError(f"the predictor's answer is not a v2 response: {error}") from error
        except Exception:
            self._pending.pop(payload.id, None)  # postprocess will never see this request
            raise

    @functools.cached_property
    def _pool(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(cpu_count(), thread_name_prefix="nexus-transform")

    @functools.cached_property
    def _client(self) -> httpx.AsyncClient:
        # one keep-alive pool per transformer, made on first use inside the server's event loop
        return httpx.AsyncClient(
            timeout=httpx.Timeout(60.0, connect=10.0), limits=httpx.Limits(max_connections=64)
        )

    async def postprocess(
        self, result: Any, headers: dict[str, str] | None = None, response_headers: dict | None = None
    ) -> Any:
        assert self.detector is not None
        if not isinstance(result, InferResponse) or result.id not in self._pending:
            raise InvalidInput("the predictor answered a request this transformer did not send")
        geometries, parsed, shapes = self._pending.pop(result.id)
        start = time.perf_counter()
        outputs = {output.name: output.as_numpy() for output in result.outputs}
        detections = self._decoder_for(result).postprocess(
            outputs["predictions"], outputs.get("protos"), geometries, [parsed.options] * len(geometries)
        )
        self.metrics.stage["postprocess"].observe(time.perf_counter() - start)
        results = [image_result(d, shape) for d, shape in zip(detections, shapes, strict=True)]
        version = result.model_version or self.version  # the predictor revision that ran the model
        if parsed.protocol == "v2":
            return build_v2_response(
                self.name, parsed.request_id, results, version, parsed.outputs, parsed.binary_outputs
            )
        return build_v1_response(results, version)


def serve_transformer(
    transformer: DetectionTransformer,
    port: int,
    host: str = "127.0.0.1",
    access_logs: bool = False,
    max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES,
) -> None:
    """Serve a loaded transformer until stopped; KServe's predictor settings name its tensor predictor."""
    from kserve.predictor_config import PredictorConfig

    from nexus.serving.server import serve

    config = PredictorConfig(predictor_host=transformer.predictor_host, predictor_protocol="v2")
    serve(
        [transformer],
        port=port,
        host=host,
        access_logs=access_logs,
        predictor_config=config,
        max_request_bytes=max_request_bytes,
    )


def _error_of(reply: httpx.Response) -> str:
    """The ``error`` of a KServe JSON error body, else the start of the body."""
    try:
        return str(reply.json()["error"])
    except Exception:
        return reply.text[:200]
