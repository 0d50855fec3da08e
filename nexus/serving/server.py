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
from kserve.errors import ModelNotFound, ModelNotReady

from nexus.serving.fast_path import InferenceFastPathMiddleware, answer_inference


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

        def _add_middlewares(self, app: Any) -> None:
            if timing_middleware:
                super()._add_middlewares(app)

    kserve_model_server.RESTServer = HostBoundRESTServer


def _add_metadata_route(server: kserve.ModelServer) -> None:
    """``GET /v2/models/{name}``: the standard OIP fields plus ``parameters`` with class names.

    Registered before KServe's own route, so it takes precedence; other models fall through to KServe.
    """

    async def model_metadata(model_name: str) -> JSONResponse:
        model = server.registered_models.get_model(model_name)
        if model is None:
            return JSONResponse({"error": f"Model with name {model_name} does not exist."}, status_code=404)
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

    kserve_model_server.app.add_api_route(
        "/v2/models/{model_name}", model_metadata, methods=["GET"], include_in_schema=False
    )


def _add_infer_route(server: kserve.ModelServer) -> None:
    """``POST /v2/models/{name}/infer`` decoding the binary tensor extension without KServe's UTF-8 trap.

    Registered before KServe's own route; everything after decoding (``preprocess`` -> ``predict`` ->
    ``postprocess``, error handlers, response encoding) is KServe's data plane.
    """

    async def infer(model_name: str, request: Request) -> Response:
        model = server.registered_models.get_model(model_name)
        if model is None:
            raise ModelNotFound(model_name)
        if not model.ready:
            raise ModelNotReady(model_name)
        content, headers = await answer_inference(
            server.dataplane, "v2", model_name, model, await request.body(), dict(request.headers)
        )
        return Response(content, headers=headers)

    kserve_model_server.app.add_api_route(
        "/v2/models/{model_name}/infer", infer, methods=["POST"], include_in_schema=False
    )


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
) -> None:
    """Load every model (ready only once loaded and warmed up), then serve until signalled.

    ``predictor_config`` (``kserve.predictor_config.PredictorConfig``) points a transformer at its predictor.
    ``fast_path`` answers v1 ``:predict`` and v2 ``/infer`` without FastAPI's routing layers
    (:mod:`nexus.serving.fast_path`); the app's own routes answer the same requests without it.
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
    _add_metadata_route(server)
    _add_infer_route(server)
    if fast_path:
        kserve_model_server.app.add_middleware(InferenceFastPathMiddleware, server=server)
    server.start(models)
