"""How ``nexus.serving.server`` adjusts KServe's REST server: bind address and middlewares."""

from __future__ import annotations

import kserve.model_server as kserve_model_server
import pytest
from fastapi import FastAPI
from timing_asgi import TimingMiddleware

from nexus.serving.server import _bind_rest_server_to


@pytest.fixture
def restore_rest_server():
    original = kserve_model_server.RESTServer
    yield
    kserve_model_server.RESTServer = original


@pytest.mark.parametrize("timing_middleware", [True, False])
def test_rest_server_is_bound_and_timing_middleware_optional(restore_rest_server, timing_middleware):
    _bind_rest_server_to("127.0.0.1", timing_middleware=timing_middleware)
    _bind_rest_server_to("127.0.0.1", timing_middleware=timing_middleware)  # idempotent: no nesting
    server_class = kserve_model_server.RESTServer
    assert server_class.__mro__[1] is server_class._nexus_original
    rest = server_class("kserve.model_server:app", None, None, http_port=0)
    assert rest.config.host == "127.0.0.1"
    app = FastAPI()
    rest._add_middlewares(app)
    installed = [middleware.cls for middleware in app.user_middleware]
    assert (TimingMiddleware in installed) is timing_middleware
