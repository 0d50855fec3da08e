"""``nexus deploy``: steer a running canary (promote, rollback, traffic, status) and write cluster manifests.

Example:
    nexus deploy status --router http://127.0.0.1:8080
    nexus deploy status --kserve detector --namespace vision --prometheus http://prometheus:9090
    nexus deploy promote
    nexus deploy promote --kserve detector --namespace vision
    nexus deploy guard --kserve detector --prometheus http://prometheus:9090
    nexus deploy manifests --name detector --storage-uri s3://models/detector/v2 --canary-percent 10
    nexus deploy manifests --name detector --storage-uri s3://models/detector/v2 --gpus 1 --transformer
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer

from nexus.errors import NexusError

app = typer.Typer(help="Promote or roll back a canary; generate KServe manifests.", no_args_is_help=True)

RouterOption = Annotated[
    str,
    typer.Option("--router", help="Canary router URL (env NEXUS_ROUTER_URL).", envvar="NEXUS_ROUTER_URL"),
]
DEFAULT_ROUTER = os.environ.get("NEXUS_ROUTER_URL", "http://127.0.0.1:8080")


def _call(method: str, router: str, path: str, body: dict | None = None) -> dict:
    import httpx

    from nexus.settings import NexusSettings

    token = NexusSettings.from_env().router_admin_token
    # as bytes: a token beyond ASCII goes as its UTF-8, which the router compares against
    headers = {"Authorization": b"Bearer " + token.encode()} if token else {}
    try:
        response = httpx.request(
            method, f"{router.rstrip('/')}{path}", json=body, headers=headers, timeout=10.0
        )
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
        raise NexusError(f"--router {router!r} is not an http:// URL: {error}") from error
    except httpx.HTTPError as error:
        raise NexusError(
            f"cannot reach the canary router at {router}: {type(error).__name__}; is one running there? "
            "'nexus deploy show' prints a local deployment's url: pass it with --router (or NEXUS_ROUTER_URL)"
        ) from error
    if response.status_code >= 400:
        raise NexusError(f"router answered {response.status_code}: {response.text[:300]}")
    try:
        return response.json()
    except ValueError as error:
        raise NexusError(
            f"{router} answered {response.status_code} without JSON: is it a canary router? "
            f"{response.text[:120]!r}"
        ) from error


def _check_percent(percent: float) -> None:
    if not 0 <= percent <= 100:  # NaN fails too
        raise NexusError(f"traffic percent must be within [0, 100], got {percent}")


KServeOption = Annotated[
    str | None,
    typer.Option(
        "--kserve", help="Steer this KServe InferenceService (canaryTrafficPercent) instead of the router."
    ),
]
NamespaceOption = Annotated[str, typer.Option("--namespace", help="The InferenceService's namespace.")]


@app.command("status")
def status_command(
    router: RouterOption = DEFAULT_ROUTER,
    kserve: Annotated[
        str | None, typer.Option("--kserve", help="Show this KServe InferenceService instead of the router.")
    ] = None,
    namespace: NamespaceOption = "default",
    prometheus: Annotated[
        str | None,
        typer.Option(
            "--prometheus",
            help="With --kserve: Prometheus URL for each revision's requests, errors and p95.",
            envvar="NEXUS_PROMETHEUS_URL",
        ),
    ] = None,
    window: Annotated[str, typer.Option("--window", help="With --prometheus: the range it covers.")] = "5m",
) -> None:
    """Show champion, challenger, traffic share and per-version counters (of the router, or of a KServe
    InferenceService's predictor revisions)."""
    if kserve is not None:
        from nexus.serving.kserve_status import kserve_status

        typer.echo(json.dumps(kserve_status(kserve, namespace, prometheus, window), indent=2))
        return
    typer.echo(json.dumps(_call("GET", router, "/admin/status"), indent=2))


def _kserve_traffic(name: str, namespace: str, percent: int) -> None:
    from nexus.serving.kserve_apply import set_canary_traffic

    typer.echo(json.dumps(set_canary_traffic(name, namespace, percent), indent=2))


@app.command("promote")
def promote_command(
    router: RouterOption = DEFAULT_ROUTER, kserve: KServeOption = None, namespace: NamespaceOption = "default"
) -> None:
    """Make the challenger the champion (all traffic); on KServe, canaryTrafficPercent 100."""
    if kserve is not None:
        _kserve_traffic(kserve, namespace, 100)
        return
    typer.echo(json.dumps(_call("POST", router, "/admin/promote"), indent=2))


@app.command("rollback")
def rollback_command(
    router: RouterOption = DEFAULT_ROUTER, kserve: KServeOption = None, namespace: NamespaceOption = "default"
) -> None:
    """Send all traffic back to the champion and drop the challenger; on KServe, canaryTrafficPercent 0
    (the previous ready revision serves)."""
    if kserve is not None:
        _kserve_traffic(kserve, namespace, 0)
        return
    typer.echo(json.dumps(_call("POST", router, "/admin/rollback"), indent=2))


@app.command("traffic")
def traffic_command(
    percent: Annotated[float, typer.Argument(help="Challenger share, 0-100.")],
    router: RouterOption = DEFAULT_ROUTER,
    kserve: KServeOption = None,
    namespace: NamespaceOption = "default",
) -> None:
    """Change the challenger's share of traffic."""
    _check_percent(percent)
    if kserve is not None:
        if percent != int(percent):
            raise NexusError(f"KServe's canaryTrafficPercent is a whole number, got {percent}")
        _kserve_traffic(kserve, namespace, int(percent))
        return
    typer.echo(json.dumps(_call("PUT", router, "/admin/traffic", {"percent": percent}), indent=2))


@app.command("guard")
def guard_command(
    kserve: Annotated[str, typer.Option("--kserve", help="The InferenceService whose canary to guard.")],
    prometheus: Annotated[
        str,
        typer.Option(
            "--prometheus", help="Prometheus URL (env NEXUS_PROMETHEUS_URL).", envvar="NEXUS_PROMETHEUS_URL"
        ),
    ],
    namespace: NamespaceOption = "default",
    window: Annotated[str, typer.Option("--window", help="Comparison window (Prometheus duration).")] = "5m",
    min_requests: Annotated[int, typer.Option("--min-requests")] = 20,
    max_error_rate_margin: Annotated[float, typer.Option("--max-error-rate-margin")] = 0.05,
    max_p95_margin: Annotated[float, typer.Option("--max-p95-margin", help="0.5 = 50% slower.")] = 0.5,
    interval: Annotated[float, typer.Option("--interval", help="Seconds between checks.")] = 30.0,
    once: Annotated[bool, typer.Option("--once", help="Check once and exit.")] = False,
) -> None:
    """Roll a KServe canary back automatically when its revision fails or slows down (Prometheus).

    Prints one JSON line per check; stops after a rollback or when no canary is running.
    """
    import time

    from nexus.serving.kserve_guard import CanaryGuardPolicy, guard_canary

    try:
        policy = CanaryGuardPolicy(window, min_requests, max_error_rate_margin, max_p95_margin)
    except ValueError as error:
        raise NexusError(str(error)) from error
    if not 0 < interval < float("inf"):  # NaN fails too
        raise NexusError(f"--interval must be a positive number of seconds, got {interval}")
    while True:
        decision = guard_canary(kserve, namespace, prometheus, policy)
        typer.echo(json.dumps(decision.to_dict()))
        if once or decision.rolled_back or not decision.state.active:
            return
        time.sleep(interval)


@app.command("manifests")
def manifests_command(
    name: Annotated[str, typer.Option("--name", help="InferenceService name.")],
    storage_uri: Annotated[str, typer.Option("--storage-uri", help="s3://bucket/prefix holding the model.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder.")] = Path("manifests/serving"),
    namespace: Annotated[str, typer.Option("--namespace")] = "default",
    canary_percent: Annotated[int | None, typer.Option("--canary-percent", help="Serverless canary.")] = None,
    mode: Annotated[str, typer.Option("--mode", help="Serverless or RawDeployment.")] = "Serverless",
    gpus: Annotated[int, typer.Option("--gpus", help="GPUs per replica.")] = 0,
    image: Annotated[str | None, typer.Option("--image", help="Serving image.")] = None,
    s3_endpoint: Annotated[str | None, typer.Option("--s3-endpoint", help="MinIO host:port.")] = None,
    service_account: Annotated[
        str | None, typer.Option("--service-account", help="Holds the S3 credentials.")
    ] = None,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size")] = 8,
    max_delay_ms: Annotated[float, typer.Option("--max-delay-ms")] = 4.0,
    transformer: Annotated[
        bool,
        typer.Option(
            "--transformer", help="Split: a CPU transformer (decode, NMS) in front of a tensor predictor."
        ),
    ] = False,
    transformer_cpu: Annotated[str, typer.Option("--transformer-cpu")] = "2",
    transformer_memory: Annotated[str, typer.Option("--transformer-memory")] = "2Gi",
    max_request_bytes: Annotated[
        int | None,
        typer.Option("--max-request-bytes", help="Largest request body clients may send (default 128 MiB)."),
    ] = None,
    full_decode: Annotated[
        bool,
        typer.Option("--full-decode", help="Decode every JPEG whole (default: large ones at reduced scale)."),
    ] = False,
) -> None:
    """Write a KServe ServingRuntime and InferenceService (canary, GPU, S3/MinIO) as YAML."""
    from nexus.serving.manifests import DEFAULT_IMAGE, DeploymentSettings, write_manifests

    try:
        settings = DeploymentSettings(
            name=name,
            storage_uri=storage_uri,
            namespace=namespace,
            canary_percent=canary_percent,
            mode=mode,
            gpus=gpus,
            image=DEFAULT_IMAGE if image is None else image,
            s3_endpoint=s3_endpoint,
            service_account=service_account,
            max_batch_size=max_batch_size,
            max_delay_ms=max_delay_ms,
            transformer=transformer,
            transformer_cpu=transformer_cpu,
            transformer_memory=transformer_memory,
            max_request_bytes=max_request_bytes,
            full_decode=full_decode,
        )
    except ValueError as error:
        raise NexusError(str(error)) from error
    for path in write_manifests(settings, out):
        typer.echo(str(path))


DeploymentArgument = Annotated[str, typer.Argument(help="Local deployment name.")]


@app.command("up")
def up_command(
    deployment: DeploymentArgument = "nexus-detector",
    port: Annotated[int | None, typer.Option("--port", help="Port (a free one by default).")] = None,
) -> None:
    """Serve a local deployment (champion, plus its canary) in the background; prints the endpoint."""
    from nexus.serving.deployment import LocalDeployment, start_server
    from nexus.settings import NexusSettings

    record = start_server(LocalDeployment.load(NexusSettings.from_env(), deployment), port=port)
    typer.echo(json.dumps(record.to_dict(), indent=2))


@app.command("down")
def down_command(deployment: DeploymentArgument = "nexus-detector") -> None:
    """Stop a local deployment's server."""
    from nexus.serving.deployment import LocalDeployment, stop_server
    from nexus.settings import NexusSettings

    stopped = stop_server(LocalDeployment.require(NexusSettings.from_env(), deployment))
    typer.echo(f"{deployment}: {'stopped' if stopped else 'was not running'}")


@app.command("show")
def show_command(deployment: DeploymentArgument = "nexus-detector") -> None:
    """A local deployment's versions, traffic split, endpoint and history."""
    from nexus.serving.deployment import LocalDeployment
    from nexus.settings import NexusSettings

    typer.echo(json.dumps(LocalDeployment.require(NexusSettings.from_env(), deployment).to_dict(), indent=2))
