"""Property-based run of the OpenAPI document: no 5xx, no response outside the documented schemas."""

from __future__ import annotations

import time

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from service_fixtures import database_url, make_settings

from nexus.service.app import create_app
from nexus.service.security import create_token

# SQLite carries the >= 1,000-case run; PostgreSQL gets a shorter one for its own type/encoding errors.
EXAMPLES = {"sqlite": 10, "postgres": 3}
MIN_CASES = {"sqlite": 1000, "postgres": 300}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
MP4 = b"\x00\x00\x00\x18ftypisom" + bytes(400)


def _seed(app, headers: dict[str, str]) -> None:
    """A few rows with id 1, so generated requests also reach the found-it paths."""
    with asgi.get_client(app) as client:

        def post(path: str, **kwargs) -> None:
            answer = client.post(path, headers=headers, **kwargs)
            assert answer.status_code == 201, (path, answer.text)

        post("/datasets", json={"name": "seed", "classes": ["a"]})
        post("/datasets/1/versions", json={"version": "v1", "dvc_hash": "abcdef", "splits": {"train": 1}})
        post("/models", json={"name": "seed"})
        post("/models/1/versions", json={"aliases": ["champion"]})
        post("/runs", json={"pipeline": "train"})
        post("/deployments", json={"name": "seed", "model_version_id": 1})
        post(
            "/experiments",
            json={
                "name": "seed",
                "variants": [{"name": "a", "traffic_percent": 50}, {"name": "b", "traffic_percent": 50}],
            },
        )
        post("/videos", params={"name": "seed.mp4"}, data=MP4)
        post(
            "/videos/1/detections",
            json={
                "detections": [
                    {
                        "frame": 0,
                        "timestamp_s": 0,
                        "class_id": 0,
                        "class_name": "a",
                        "confidence": 0.9,
                        "x1": 0,
                        "y1": 0,
                        "x2": 1,
                        "y2": 1,
                        "track_id": 1,
                    }
                ]
            },
        )
        post(
            "/artifacts", params={"name": "seed.png", "kind": "image"}, data=b"\x89PNG\r\n\x1a\n" + bytes(64)
        )
        post("/api-keys", json={"name": "seed", "scopes": ["datasets:read"]})


def test_openapi_fuzzing_finds_no_server_errors(request, backend, tmp_path) -> None:
    app_settings = make_settings(
        tmp_path,
        database_url(request, backend, tmp_path),
        max_upload_bytes=64 * 1024,
        max_running_pipelines=0,  # launched runs stay queued: fuzzing never starts a pipeline
    )
    app = create_app(app_settings)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)  # starts the app's lifespan (admin id 1)
    headers = {"Authorization": f"Bearer {create_token(app_settings, 1, 'access')}"}
    _seed(app, headers)
    total = 0
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    started = time.monotonic()
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES[backend],
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def run(case) -> None:
                nonlocal total
                total += 1
                case.call_and_validate(headers=headers, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                # nothing to make invalid (e.g. GET /health has no parameters)
                assert mode == GenerationMode.NEGATIVE, operation.label
    elapsed = time.monotonic() - started
    print(f"schemathesis ({backend}): {total} cases over {len(operations)} operations in {elapsed:.1f} s")
    assert total >= MIN_CASES[backend]
