"""``nexus serve MODEL [--canary MODEL2 --canary-percent N] [--split]``: a local KServe predictor, a
canary, or the split deployment.

Without ``--canary`` one predictor serves on ``--port``. With it, champion and challenger predictors
start on free localhost ports and a router on ``--port`` splits traffic between them (see
``nexus deploy promote|rollback|status``). With ``--split``, the deployment ``nexus deploy manifests
--transformer`` describes for a cluster: a tensor predictor on a free port runs the model, and a
transformer on ``--port`` decodes, letterboxes and runs NMS.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from nexus.errors import NexusError
from nexus.serving.body_limit import DEFAULT_MAX_REQUEST_BYTES


def serve_command(
    model: Annotated[
        str, typer.Argument(help="Model: .onnx/.pt/.engine file, models:/name@alias or s3://...")
    ],
    port: Annotated[int, typer.Option("--port", help="Port of the predictor (or of the router).")] = 8080,
    host: Annotated[str, typer.Option("--host", help="Bind address.")] = "127.0.0.1",
    name: Annotated[str, typer.Option("--name", help="Model name in /v1 and /v2 URLs.")] = "nexus-detector",
    device: Annotated[str, typer.Option("--device", help="cpu, or a CUDA device index.")] = "cpu",
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", help="Dynamic batching limit.")] = 8,
    max_delay_ms: Annotated[float, typer.Option("--max-delay-ms", help="Longest wait for a batch.")] = 4.0,
    batch_shards: Annotated[
        int | None,
        typer.Option(
            "--batch-shards",
            help=(
                "CPU: ONNX Runtime sessions, each running its own batch under load or a slice of a "
                "batch otherwise (default: one per core, <= batch size)."
            ),
        ),
    ] = None,
    version: Annotated[str, typer.Option("--version", help="Version label of MODEL.")] = "v1",
    max_request_bytes: Annotated[
        int,
        typer.Option(
            "--max-request-bytes",
            min=1,
            help="Larger request bodies are refused with a 413 before they are read (default 128 MiB).",
        ),
    ] = DEFAULT_MAX_REQUEST_BYTES,
    full_decode: Annotated[
        bool,
        typer.Option(
            "--full-decode",
            help=(
                "Decode every JPEG whole (default: one at least twice its letterboxed size decodes at "
                "1/2, 1/4 or 1/8 scale, never below that size: faster, pixels differ slightly)."
            ),
        ),
    ] = False,
    canary: Annotated[
        str | None, typer.Option("--canary", help="Challenger model for an A/B canary.")
    ] = None,
    canary_version: Annotated[str, typer.Option("--canary-version", help="Challenger's label.")] = "v2",
    canary_percent: Annotated[
        float, typer.Option("--canary-percent", help="Share of traffic (0-100) for the challenger.")
    ] = 10.0,
    auto_rollback: Annotated[
        bool, typer.Option("--auto-rollback/--no-auto-rollback", help="Roll back a failing challenger.")
    ] = True,
    rollback_window: Annotated[int, typer.Option("--rollback-window", help="Requests per window.")] = 200,
    rollback_min_requests: Annotated[
        int, typer.Option("--rollback-min-requests", help="Requests per version before judging.")
    ] = 20,
    rollback_error_margin: Annotated[
        float, typer.Option("--rollback-error-margin", help="Allowed extra error rate (0.05 = 5 points).")
    ] = 0.05,
    rollback_p95_margin: Annotated[
        float, typer.Option("--rollback-p95-margin", help="Allowed extra p95 latency (0.5 = 50%).")
    ] = 0.5,
    log_dir: Annotated[
        Path | None, typer.Option("--log-dir", help="Where the canary's predictor logs go.")
    ] = None,
    split: Annotated[
        bool,
        typer.Option(
            "--split",
            help="A transformer on --port (decode, NMS) in front of a tensor predictor (the model).",
        ),
    ] = False,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            hidden=True,  # set by `nexus deploy up`
            help="The local deployment this canary serves: the router's promotions and rollbacks are "
            "written to its record and the registry.",
        ),
    ] = None,
) -> None:
    """Serve a model over KServe v1 and v2 (dynamic batching), optionally as a canary A/B."""
    from nexus.serving.launcher import ensure_port_free

    ensure_port_free(host, port)  # before minutes of loading, not after
    if split:
        if canary is not None:
            raise NexusError(
                "--split and --canary do not combine locally; on KServe a canary rolls out the predictor "
                "behind the transformer (nexus deploy manifests --transformer --canary-percent N)"
            )
        _serve_split(
            model, port, host, name, device, max_batch_size, max_delay_ms, batch_shards, version, log_dir,
            max_request_bytes, full_decode,
        )  # fmt: skip
        return
    if canary is None:
        sys.argv = sys.argv[:1]  # kserve parses the command line when imported
        from nexus.serving.config import BatchingConfig, PredictorConfig
        from nexus.serving.predictor import DetectionPredictor
        from nexus.serving.server import serve

        try:
            config = PredictorConfig(
                model_uri=model,
                model_name=name,
                device=device,
                batching=BatchingConfig(
                    max_batch_size=max_batch_size, max_delay_ms=max_delay_ms, shards=batch_shards
                ),
                scaled_jpeg_decode=not full_decode,
                version=version,
            )
        except ValueError as error:
            raise NexusError(str(error)) from error
        predictor = DetectionPredictor(config)
        predictor.load()
        typer.echo(f"serving {name} ({version}) at http://{host}:{port}", err=True)
        serve([predictor], port=port, host=host, max_request_bytes=max_request_bytes)
        return
    _serve_canary(
        model, canary, port, host, name, device, max_batch_size, max_delay_ms, batch_shards, version,
        canary_version, canary_percent, auto_rollback, rollback_window, rollback_min_requests,
        rollback_error_margin, rollback_p95_margin, log_dir, max_request_bytes, full_decode, deployment,
    )  # fmt: skip


def _serve_canary(
    model: str,
    canary: str,
    port: int,
    host: str,
    name: str,
    device: str,
    max_batch_size: int,
    max_delay_ms: float,
    batch_shards: int | None,
    version: str,
    canary_version: str,
    canary_percent: float,
    auto_rollback: bool,
    rollback_window: int,
    rollback_min_requests: int,
    rollback_error_margin: float,
    rollback_p95_margin: float,
    log_dir: Path | None,
    max_request_bytes: int,
    full_decode: bool = False,
    deployment: str | None = None,
) -> None:
    import uvicorn

    from nexus.serving.launcher import PredictorProcess
    from nexus.serving.router import CanaryRouter, RollbackPolicy, Upstream, create_router_app
    from nexus.settings import NexusSettings

    try:
        policy = RollbackPolicy(
            enabled=auto_rollback,
            window=rollback_window,
            min_requests=rollback_min_requests,
            max_error_rate_margin=rollback_error_margin,
            max_p95_margin=rollback_p95_margin,
        )
        if not 0 <= canary_percent <= 100:
            raise ValueError(f"--canary-percent must be within [0, 100], got {canary_percent}")
        if version == canary_version:
            raise ValueError("--version and --canary-version must differ")
    except ValueError as error:
        raise NexusError(str(error)) from error
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    started: list[PredictorProcess] = []
    try:
        for model_uri, label in ((model, version), (canary, canary_version)):
            started.append(
                PredictorProcess.start(
                    model_uri,
                    version=label,
                    model_name=name,
                    device=device,
                    max_batch_size=max_batch_size,
                    max_delay_ms=max_delay_ms,
                    batch_shards=batch_shards,
                    max_request_bytes=max_request_bytes,
                    log_path=None if log_dir is None else log_dir / f"predictor-{label}.log",
                    timeout_s=120,
                    extra_args=["--full-decode"] if full_decode else None,
                )
            )
        router = CanaryRouter(
            Upstream(version, started[0].url),
            Upstream(canary_version, started[1].url),
            percent=canary_percent,
            policy=policy,
        )
        typer.echo(
            f"canary router at http://{host}:{port}: {version} {100 - canary_percent:g}% / "
            f"{canary_version} {canary_percent:g}%",
            err=True,
        )
        if deployment is not None:
            router.on_change = _persisting_to(deployment)
        admin_token = NexusSettings.from_env().router_admin_token
        if admin_token is None and not _loopback(host):
            typer.echo(
                f"warning: anyone who reaches {host}:{port} can promote or roll back; set "
                "NEXUS_ROUTER_ADMIN_TOKEN to require a bearer token",
                err=True,
            )
        app = create_router_app(router, max_request_bytes=max_request_bytes, admin_token=admin_token)
        # ws="none": the router serves no websockets; with them on, an upgrade request hangs its connection
        uvicorn.run(app, host=host, port=port, access_log=False, log_level="warning", ws="none")
    finally:
        for predictor in started:
            predictor.stop()


def _persisting_to(deployment: str):
    """The router's ``on_change`` hook for a local deployment: each promotion or rollback also moves
    the registry and the record (a failure is reported on stderr; the router keeps serving)."""
    from nexus.serving.rollout import persist_router_change
    from nexus.settings import NexusSettings

    def persist(event: dict) -> None:
        try:
            if persist_router_change(NexusSettings.from_env(), deployment, event):
                typer.echo(f"deployment {deployment}: recorded the router's {event['action']}", err=True)
        except Exception as error:  # a hook thread: say it, never take the router down
            typer.echo(
                f"deployment {deployment}: could not record the router's {event.get('action')} "
                f"({type(error).__name__}: {error}); run 'nexus registry {event.get('action')} "
                f"--deployment {deployment}' to bring the registry and the record in line",
                err=True,
            )

    return persist


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _serve_split(
    model: str,
    port: int,
    host: str,
    name: str,
    device: str,
    max_batch_size: int,
    max_delay_ms: float,
    batch_shards: int | None,
    version: str,
    log_dir: Path | None,
    max_request_bytes: int,
    full_decode: bool = False,
) -> None:
    from nexus.serving.launcher import PredictorProcess

    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
    with PredictorProcess.start(
        model,
        version=version,
        model_name=name,
        device=device,
        max_batch_size=max_batch_size,
        max_delay_ms=max_delay_ms,
        batch_shards=batch_shards,
        log_path=None if log_dir is None else log_dir / "tensor-predictor.log",
        timeout_s=120,
        extra_args=["--mode", "tensor-predictor"],
    ) as tensor_predictor:
        sys.argv = sys.argv[:1]  # kserve parses the command line when imported
        from nexus.serving.transformer import DetectionTransformer, serve_transformer

        transformer = DetectionTransformer(
            name,
            tensor_predictor.url.removeprefix("http://"),
            version=version,
            scaled_jpeg_decode=not full_decode,
        )
        transformer.load()
        typer.echo(
            f"serving {name} ({version}) at http://{host}:{port}: transformer -> tensor predictor at "
            f"{tensor_predictor.url}",
            err=True,
        )
        serve_transformer(transformer, port=port, host=host, max_request_bytes=max_request_bytes)
