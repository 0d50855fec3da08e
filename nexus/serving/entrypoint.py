"""``python -m serving`` / ``python -m nexus.serving.entrypoint``: one predictor process.

Example:
    python -m serving --model best.onnx --port 8080 --max-batch-size 8 --max-delay-ms 4
    python -m serving --mode tensor-predictor --model best.onnx --port 8081
    python -m serving --mode transformer --predictor-host 127.0.0.1:8081 --port 8080

On a cluster KServe's controller appends ``--model_name``, ``--predictor_host`` and ``--http_port`` to a
transformer container's arguments (and ``--workers`` when ``containerConcurrency`` is set); they are
accepted as spellings of ``--name``, ``--predictor-host`` and ``--port``.
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nexus-predictor", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=("predictor", "tensor-predictor", "transformer"),
        default="predictor",
        help="predictor: the whole request path (default); transformer + tensor-predictor: split deployment",
    )
    parser.add_argument("--model", help="model file, models:/name@alias or s3://bucket/key")
    parser.add_argument(
        "--predictor-host",
        "--predictor_host",
        dest="predictor_host",
        help="host[:port] of the tensor predictor (transformer mode)",
    )
    parser.add_argument(
        "--predictor-wait-s",
        type=float,
        default=300.0,
        help="transformer: how long to wait for the predictor's metadata at start (it may still be loading)",
    )
    parser.add_argument(
        "--name",
        "--model_name",
        dest="name",
        default=None,
        help="model name in URLs (default nexus-detector)",
    )
    parser.add_argument("--port", "--http_port", dest="port", type=int, default=8080)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="accepted for KServe (containerConcurrency); one process serves, its pools use every core",
    )
    parser.add_argument("--host", default="127.0.0.1", help="bind address (0.0.0.0 inside a container)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--imgsz", type=int, default=None)
    parser.add_argument("--max-batch-size", type=int, default=8)
    parser.add_argument("--max-delay-ms", type=float, default=4.0)
    parser.add_argument(
        "--batch-shards",
        type=int,
        default=None,
        help=(
            "CPU: ONNX Runtime sessions, each running its own batch under load or a slice of a batch "
            "otherwise (default: one per core, at most the batch size)"
        ),
    )
    parser.add_argument(
        "--version",
        dest="version_label",
        default=os.environ.get("K_REVISION", "v1"),
        help="version label in responses (default: the Knative revision on KServe Serverless, else v1)",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=None,
        help=(
            "refuse larger request bodies with a 413 (default 128 MiB; a tensor predictor, which only "
            "its transformer calls, has no limit unless given one)"
        ),
    )
    parser.add_argument(
        "--full-decode",
        action="store_true",
        help=(
            "decode every JPEG whole (default: one at least twice its letterboxed size decodes at 1/2, "
            "1/4 or 1/8 scale, never below that size; faster, pixels differ slightly from a whole decode)"
        ),
    )
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--access-logs", action="store_true", help="log every request")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.mode == "transformer" and not args.predictor_host:
        parser.error("--mode transformer needs --predictor-host host:port")
    if args.mode != "transformer" and not args.model:
        parser.error(f"--mode {args.mode} needs --model")
    if not 1 <= args.port <= 65535:  # before loading the model, not a traceback from bind() after it
        parser.error(f"--port must be within 1..65535, got {args.port}")
    if args.max_request_bytes is not None and args.max_request_bytes < 1:
        parser.error(f"--max-request-bytes must be at least 1, got {args.max_request_bytes}")
    if args.workers != 1:
        print(
            f"note: --workers {args.workers} ignored: one process serves; its batcher and decode pool use "
            "every core",
            file=sys.stderr,
        )
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    sys.argv = sys.argv[:1]  # kserve parses the command line at import; keep our flags from it
    if args.mode != "predictor":
        return _serve_split(args)
    from nexus.serving.body_limit import DEFAULT_MAX_REQUEST_BYTES
    from nexus.serving.config import DEFAULT_MODEL_NAME, BatchingConfig, PredictorConfig
    from nexus.serving.predictor import DetectionPredictor
    from nexus.serving.server import serve

    try:
        config = PredictorConfig(
            model_uri=args.model,
            model_name=args.name or DEFAULT_MODEL_NAME,
            device=args.device,
            imgsz=args.imgsz,
            batching=BatchingConfig(
                max_batch_size=args.max_batch_size, max_delay_ms=args.max_delay_ms, shards=args.batch_shards
            ),
            warmup=not args.no_warmup,
            scaled_jpeg_decode=not args.full_decode,
            version=args.version_label,
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from nexus.errors import NexusError

    predictor = DetectionPredictor(config)
    try:
        predictor.load()
    except NexusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    serve(
        [predictor],
        port=args.port,
        host=args.host,
        access_logs=args.access_logs,
        max_request_bytes=args.max_request_bytes or DEFAULT_MAX_REQUEST_BYTES,
    )
    return 0


def _serve_split(args) -> int:
    from nexus.errors import NexusError
    from nexus.serving.body_limit import DEFAULT_MAX_REQUEST_BYTES
    from nexus.serving.config import DEFAULT_MODEL_NAME, BatchingConfig
    from nexus.serving.server import serve
    from nexus.serving.transformer import DetectionTransformer, TensorPredictor, serve_transformer

    name = args.name or DEFAULT_MODEL_NAME
    try:
        if args.mode == "tensor-predictor":
            model = TensorPredictor(
                name,
                args.model,
                device=args.device,
                version=args.version_label,
                batching=BatchingConfig(
                    max_batch_size=args.max_batch_size,
                    max_delay_ms=args.max_delay_ms,
                    shards=args.batch_shards,
                ),
            )
            model.load()
            serve(
                [model],
                port=args.port,
                host=args.host,
                access_logs=args.access_logs,
                max_request_bytes=args.max_request_bytes,
            )
            return 0
        transformer = DetectionTransformer(
            name,
            args.predictor_host,
            imgsz=args.imgsz,
            version=args.version_label,
            predictor_wait_s=args.predictor_wait_s,
            scaled_jpeg_decode=not args.full_decode,
        )
        transformer.load()
    except NexusError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    serve_transformer(
        transformer,
        port=args.port,
        host=args.host,
        access_logs=args.access_logs,
        max_request_bytes=args.max_request_bytes or DEFAULT_MAX_REQUEST_BYTES,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
