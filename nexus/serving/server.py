"""Run predictors in a KServe ``ModelServer`` bound to one host, with quiet logs and rich metadata.

``kserve`` parses the program's command line when imported: call :func:`serve` from an entry point
that has already parsed its own flags (``nexus.serving.entrypoint`` clears ``sys.argv`` first).
"""

from __future__ import annotations

import logging
from typing import Any

import kserve
import kserve.model_server as kserve_model_server
from fastapi import Request, Response
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput, ModelNotFound, ModelNotReady

from nexus.serving.body_limit import DEFAULT_MAX_REQUEST_BYTES, RequestBodyLimitMiddleware
from nexus.serving.fast_path import InferenceFastPathMiddleware, answer_inference

logger = logging.getLogger(__name__)

_CLIENT_ERRORS = ((InvalidInput, 400), (ModelNotFound, 404))


def _answer_client_errors_quietly(app: Any) -> None:
    """A bad request gets the same JSON error as from KServe's handlers, logged as one warning line.

    KServe logs a full traceback for every 400 and 404 it answers, so any client could fill the log
    with them; a traceback stays for the 5xx errors, which are ours.
    """

    def handler_for(status: int):
        async def answer(request: Request, error: Exception) -> JSONResponse:
            logger.warning("%s %s answered %d: %s", request.method, request.url.path, status, error)
            return JSONResponse({"error": str(error)}, status_code=status)

        return answer

    for kind, status in _CLIENT_ERRORS:
        app.add_exception_handler(kind, handler_for(status))


def _bind_rest_server_to(host: str, timing_middleware: bool = True) -> None:
    """KServe 0.21 hard-codes ``0.0.0.0``; rebind its REST server (e.g. to ``127.0.0.1``).

    ``timing_middleware=False`` leaves out KServe's ``TimingMiddleware``: it only writes to the
    ``kserve.trace`` log (silenced by :func:`quiet_access_logs`), yet costs two ``getrusage`` calls,
    a route lookup and a formatted string on every request (~0.1 ms); our Prometheus stage
    histograms carry the timings instead.
    """
    original = getattr(kserve_model_server.RESTServer, "_nexus_original", kserve_model_server.RESTServer)

    class HostBoundRESTServer(original):  # type: ignore[misc, valid-type]
        _nexus_original = original

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.config.host = host
            self.config.ws = "none"  # no websockets here; with them on, an upgrade request hangs

        def _add_middlewares(self, app: Any) -> None:
            if timing_middleware:
                super()._add_middlewares(app)

        def _add_exception_handlers(self, app: Any) -> None:
            super()._add_exception_handlers(app)
            _answer_client_errors_quietly(app)

    kserve_model_server.RESTServer = HostBoundRESTServer


def _served_version(model: Any) -> str | None:
    """The version label a model serves (its ``version`` or ``config.version``), ``None`` without one."""
    version = getattr(model, "version", None) or getattr(getattr(model, "config", None), "version", None)
    return version if isinstance(version, str) else None


def _version_mismatch(model_name: str, model: Any, model_version: str | None) -> JSONResponse | None:
    """A 404 naming the version served here when a ``/versions/{v}/`` route asks for another one."""
    if model_version is None or model_version == _served_version(model):
        return None
    served = _served_version(model)
    hint = f"; it serves version {served!r}" if served else ""
    return JSONResponse(
        {"error": f"model {model_name} has no version {model_version!r}{hint}"}, status_code=404
    )


def _add_metadata_route(server: kserve.ModelServer) -> None:
    """``GET /v2/models/{name}[/versions/{v}]``: the standard OIP fields plus ``parameters`` with class
    names, and ``GET /v2/models/{name}/versions/{v}/ready``.

    Registered before KServe's own routes (which answer 501 to any version), so they take precedence;
    other models fall through to KServe. A version other than the one served is a 404.
    """

    def lookup(model_name: str, model_version: str | None) -> tuple[Any, JSONResponse | None]:
        """The registered model, or a 404 for an unknown model or a version not served here."""
        model = server.registered_models.get_model(model_name)
        if model is None:
            error = {"error": f"Model with name {model_name} does not exist."}
            return None, JSONResponse(error, status_code=404)
        return model, _version_mismatch(model_name, model, model_version)

    async def model_metadata(model_name: str, model_version: str | None = None) -> JSONResponse:
        model, missing = lookup(model_name, model_version)
        if missing is not None:
            return missing
        body: dict[str, Any] = {
            "name": model_name,
            "versions": [],
            "platform": "",
            "inputs": model.get_input_types(),
            "outputs": model.get_output_types(),
        }
        if hasattr(model, "describe"):
            description = model.describe()
            body["versions"] = [description["version"]]
            body["platform"] = f"nexus/{description['backend']}"
            body["parameters"] = description
        return JSONResponse(body)

    async def model_version_ready(model_name: str, model_version: str) -> JSONResponse:
        model, missing = lookup(model_name, model_version)
        if missing is not None:
            return missing
        if not model.ready:
            raise ModelNotReady(model_name)
        return JSONResponse({"name": model_name, "ready": True})

    for path in ("/v2/models/{model_name}", "/v2/models/{model_name}/versions/{model_version}"):
        kserve_model_server.app.add_api_route(path, model_metadata, methods=["GET"], include_in_schema=False)
    kserve_model_server.app.add_api_route(
        "/v2/models/{model_name}/versions/{model_version}/ready",
        model_version_ready,
        methods=["GET"],
        include_in_schema=False,
    )


def _add_infer_route(server: kserve.ModelServer) -> None:
    """``POST /v2/models/{name}[/versions/{v}]/infer`` decoding the binary tensor extension without
    KServe's UTF-8 trap.

    Registered before KServe's own route; everything after decoding (``preprocess`` -> ``predict`` ->
    ``postprocess``, error handlers, response encoding) is KServe's data plane.
    """

    async def infer(model_name: str, request: Request, model_version: str | None = None) -> Response:
        model = server.registered_models.get_model(model_name)
        if model is None:
            raise ModelNotFound(model_name)
        mismatch = _version_mismatch(model_name, model, model_version)
        if mismatch is not None:
            return mismatch
        if not model.ready:
            raise ModelNotReady(model_name)
        content, headers = await answer_inference(
            server.dataplane, "v2", model_name, model, await request.body(), dict(request.headers)
        )
        return Response(content, headers=headers)

    for path in ("/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer"):
        kserve_model_server.app.add_api_route(path, infer, methods=["POST"], include_in_schema=False)


def _log_like_kserve() -> None:
    """Send the ``nexus`` loggers' records through KServe's handlers: the same timestamped format."""
    nexus_logger, kserve_logger = logging.getLogger("nexus"), logging.getLogger("kserve")
    if kserve_logger.handlers and not nexus_logger.handlers:
        for handler in kserve_logger.handlers:
            nexus_logger.addHandler(handler)
        nexus_logger.setLevel(logging.INFO)
        nexus_logger.propagate = False


def quiet_access_logs() -> None:
    """Turn off per-request access logs (they cost ~30% of throughput on small requests)."""
    for name in ("uvicorn.access", "kserve.trace"):
        logging.getLogger(name).setLevel(logging.WARNING)
        logging.getLogger(name).disabled = True


def serve(
    models: list[kserve.Model],
    port: int,
    host: str = "127.0.0.1",
    access_logs: bool = False,
    predictor_config: Any = None,
    fast_path: bool = True,
    max_request_bytes: int | None = DEFAULT_MAX_REQUEST_BYTES,
) -> None:
    """Load every model (ready only once loaded and warmed up), then serve until signalled.

    ``predictor_config`` (``kserve.predictor_config.PredictorConfig``) points a transformer at its predictor.
    ``fast_path`` answers v1 ``:predict`` and v2 ``/infer`` without FastAPI's routing layers
    (:mod:`nexus.serving.fast_path`); the app's own routes answer the same requests without it.
    ``max_request_bytes`` refuses larger bodies with a 413 before they are read (``None``: no limit,
    for a tensor predictor that only its transformer calls).
    """
    _bind_rest_server_to(host, timing_middleware=access_logs)
    for model in models:
        if not model.ready:
            model.load()
    server = kserve.ModelServer(
        http_port=port,
        enable_grpc=False,
        enable_latency_logging=False,
        workers=1,
        enable_docs_url=False,
        predictor_config=predictor_config,
    )
    if not access_logs:
        quiet_access_logs()
    _log_like_kserve()
    _add_metadata_route(server)
    _add_infer_route(server)
    if fast_path:
        kserve_model_server.app.add_middleware(InferenceFastPathMiddleware, server=server)
    if max_request_bytes is not None:  # added last: the outermost layer
        kserve_model_server.app.add_middleware(RequestBodyLimitMiddleware, max_bytes=max_request_bytes)
    server.start(models)
