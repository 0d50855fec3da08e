"""KServe ``InferenceService`` + ``ServingRuntime`` manifests from the same settings as local serving.

Built with the kserve SDK models and serialized with ``ApiClient().sanitize_for_serialization`` (the
camelCase form the cluster accepts; ``to_dict()`` is snake_case and is not a manifest).

With ``transformer=True`` the deployment is split: a transformer (decode, letterbox, NMS; CPU) in
front of a tensor predictor (the model only; the GPU node). KServe's controller appends
``--model_name``, ``--predictor_host`` and ``--http_port`` to the transformer container's arguments;
``nexus.serving.entrypoint`` accepts them. A canary then rolls the predictor out: the transformer
calls the predictor's service, which splits the traffic between its revisions.

Example:
    >>> settings = DeploymentSettings("detector", storage_uri="s3://models/detector/v2", canary_percent=10)
    >>> isvc = inference_service_manifest(settings)
    >>> isvc["spec"]["predictor"]["canaryTrafficPercent"]
    10
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from nexus.serving.config import BatchingConfig

MODES = ("Serverless", "RawDeployment")
MODEL_FORMAT = "nexus-yolo"
DEFAULT_IMAGE = "ghcr.io/nexus-ai/nexus-serving:0.1.0"
DEFAULT_RUNTIME = "nexus-yolo-runtime"
DEFAULT_TENSOR_RUNTIME = "nexus-yolo-tensor-runtime"
PORT = 8080
HOST_LABEL_MAX = 63

DNS1035_LABEL = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
DNS1123_SUBDOMAIN = re.compile(
    r"(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
)
# A container image reference as the kubelet parses it (github.com/distribution/reference); anything else
# is accepted by the API server and then never starts (InvalidImageName).
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::\w[\w.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",
    re.ASCII,
)
_HOST = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
QUANTITY = re.compile(r"(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?")


def check_inference_service_name(name: object) -> None:
    """Raise ``ValueError`` unless ``name`` can name an InferenceService (KServe: a DNS-1035 label)."""
    if not isinstance(name, str) or not DNS1035_LABEL.fullmatch(name):
        raise ValueError(
            f"name {name!r} must be a DNS-1035 label: lowercase letters, digits and '-', starting with a "
            "letter, ending with a letter or digit, at most 63 characters"
        )


def check_namespace(namespace: object) -> None:
    """Raise ``ValueError`` unless ``namespace`` is a DNS-1123 label (what Kubernetes accepts)."""
    if not isinstance(namespace, str) or not DNS1123_LABEL.fullmatch(namespace):
        raise ValueError(
            f"namespace {namespace!r} must be a DNS-1123 label: lowercase letters, digits and '-', "
            "at most 63 characters"
        )


@dataclass(frozen=True)
class DeploymentSettings:
    """Everything the cluster manifests depend on.

    Attributes:
        name: InferenceService name (DNS-1035 label).
        storage_uri: where the model lives (``s3://bucket/prefix`` on S3/MinIO, ``pvc://...``).
        namespace: Kubernetes namespace.
        canary_percent: share of traffic for the latest revision (Serverless only); ``None`` = no canary.
        mode: ``Serverless`` (Knative, scale to zero, canary) or ``RawDeployment`` (plain Deployment).
        gpus: NVIDIA GPUs per replica (0 = CPU with ONNX Runtime).
        image: the serving image built from ``serving/Dockerfile``.
        runtime_name: the ``ServingRuntime`` to create and select (default ``nexus-yolo-runtime``, or
            ``nexus-yolo-tensor-runtime`` with a transformer).
        service_account: service account holding the S3/MinIO credentials secret.
        s3_endpoint: MinIO endpoint (``minio.minio:9000``) written into the runtime's environment.
        max_batch_size / max_delay_ms: the predictor's dynamic batching.
        min_replicas / max_replicas: autoscaling bounds.
        cpu / memory: requests and limits per predictor replica.
        transformer: split the deployment: a CPU transformer (decode, letterbox, NMS) calls a tensor
            predictor that only runs the model.
        transformer_cpu / transformer_memory: requests and limits per transformer replica.
        max_request_bytes: largest request body the client-facing container (the predictor, or the
            transformer when split) accepts; ``None`` keeps the image's default of 128 MiB.
        full_decode: the container that decodes images (the predictor, or the transformer when
            split) decodes every JPEG whole instead of at a reduced scale (``--full-decode``).
    """

    name: str
    storage_uri: str
    namespace: str = "default"
    canary_percent: int | None = None
    mode: str = "Serverless"
    gpus: int = 0
    image: str = DEFAULT_IMAGE
    runtime_name: str | None = None
    service_account: str | None = None
    s3_endpoint: str | None = None
    max_batch_size: int = 8
    max_delay_ms: float = 4.0
    min_replicas: int = 1
    max_replicas: int = 3
    cpu: str = "2"
    memory: str = "4Gi"
    transformer: bool = False
    transformer_cpu: str = "2"
    transformer_memory: str = "2Gi"
    max_request_bytes: int | None = None
    full_decode: bool = False

    def __post_init__(self) -> None:
        self._check_types()
        if self.runtime_name is None:
            default = DEFAULT_TENSOR_RUNTIME if self.transformer else DEFAULT_RUNTIME
            object.__setattr__(self, "runtime_name", default)

        check_inference_service_name(self.name)
        check_namespace(self.namespace)
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        self._check_host_names()
        scheme, _, rest = self.storage_uri.partition("://")
        if scheme not in ("s3", "gs", "pvc", "https", "hf") or not rest.strip("/"):
            raise ValueError(
                f"storage_uri {self.storage_uri!r} must be a remote URI (s3://bucket/prefix for S3/MinIO, "
                "pvc://claim/path)"
            )
        if any(c.isspace() or not c.isprintable() for c in self.storage_uri):
            raise ValueError(
                f"storage_uri {self.storage_uri!r} contains whitespace or control characters; "
                "pass the URI alone, without spaces or line breaks"
            )
        if len(self.image) > 255 or not IMAGE_REFERENCE.fullmatch(self.image):
            raise ValueError(
                f"image {self.image!r} must be an image reference such as {DEFAULT_IMAGE} "
                "(repository in lowercase, optional :tag and @sha256:digest)"
            )
        for field_name in ("runtime_name", "service_account"):
            value = getattr(self, field_name)
            if value is not None and not DNS1123_SUBDOMAIN.fullmatch(value):
                hint = "; omit it to use the namespace's default" if field_name == "service_account" else ""
                raise ValueError(
                    f"{field_name} {value!r} must be a DNS-1123 subdomain: lowercase letters, digits, '-' "
                    f"and '.', starting and ending with a letter or digit{hint}"
                )
        if self.s3_endpoint is not None:
            host, colon, port = self.s3_endpoint.partition(":")
            if (
                not re.fullmatch(_HOST, host)
                or len(host) > 253
                or (colon and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535))
            ):
                raise ValueError(
                    f"s3_endpoint {self.s3_endpoint!r} must be host[:port] without a scheme or path, "
                    "port within 1..65535, e.g. minio.minio:9000"
                )
        for field_name in ("cpu", "memory", "transformer_cpu", "transformer_memory"):
            value = getattr(self, field_name)
            examples = "'4Gi', '512Mi'" if "memory" in field_name else "'2', '500m'"
            quantity = QUANTITY.fullmatch(value)
            if not quantity:
                raise ValueError(f"{field_name} {value!r} is not a Kubernetes quantity (e.g. {examples})")
            if not any(c in "123456789" for c in quantity.group(1)):
                raise ValueError(f"{field_name} {value!r} must be above zero (e.g. {examples})")
            if "memory" in field_name and quantity.group(3) == "m":
                raise ValueError(
                    f"{field_name} {value!r} is {value[:-1]} thousandths of a byte ('m' is milli); "
                    f"write {value[:-1]}Mi (mebibytes) or {value[:-1]}M (megabytes)"
                )
        BatchingConfig(max_batch_size=self.max_batch_size, max_delay_ms=self.max_delay_ms)
        if self.canary_percent is not None:
            if not 0 <= self.canary_percent <= 100:
                raise ValueError(f"canary_percent must be within [0, 100], got {self.canary_percent}")
            if self.mode != "Serverless":
                raise ValueError(
                    "canaryTrafficPercent needs Serverless mode in KServe; "
                    "use --mode Serverless or drop --canary-percent"
                )
        if self.max_request_bytes is not None and self.max_request_bytes < 1:
            raise ValueError(f"max_request_bytes must be at least 1, got {self.max_request_bytes}")
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}; 0 runs on the CPU")
        if not 0 <= self.min_replicas <= self.max_replicas or self.max_replicas < 1:
            raise ValueError(
                f"need 0 <= min_replicas <= max_replicas and max_replicas >= 1, got "
                f"{self.min_replicas}..{self.max_replicas}"
            )
        if self.min_replicas == 0 and self.mode == "RawDeployment":
            raise ValueError("RawDeployment cannot scale to zero; set min_replicas >= 1")

    def _check_types(self) -> None:
        """Whole numbers, flags and strings where Kubernetes and the serving image need them; numeric
        quantities (``cpu=2``) become strings."""
        for field_name in ("name", "storage_uri", "namespace", "mode", "image"):
            value = getattr(self, field_name)
            if not isinstance(value, str):
                raise ValueError(f"{field_name} must be a string, got {value!r}")
        for field_name in ("runtime_name", "service_account", "s3_endpoint"):
            value = getattr(self, field_name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"{field_name} must be a string, got {value!r}")
        for field_name in ("cpu", "memory", "transformer_cpu", "transformer_memory"):
            value = getattr(self, field_name)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                object.__setattr__(self, field_name, str(value))
            elif not isinstance(value, str):
                raise ValueError(
                    f"{field_name} {value!r} is not a Kubernetes quantity (e.g. '2', '500m', '4Gi')"
                )
        wholes = (
            "gpus",
            "max_batch_size",
            "min_replicas",
            "max_replicas",
            "canary_percent",
            "max_request_bytes",
        )
        for field_name in wholes:
            value = getattr(self, field_name)
            if value is None and field_name in ("canary_percent", "max_request_bytes"):
                continue
            if isinstance(value, bool) or not isinstance(value, int):
                hint = " (Kubernetes allocates whole GPUs)" if field_name == "gpus" else ""
                raise ValueError(f"{field_name} must be a whole number{hint}, got {value!r}")
        for field_name in ("transformer", "full_decode"):
            value = getattr(self, field_name)
            if not isinstance(value, bool):
                raise ValueError(f"{field_name} must be True or False, got {value!r}")

    def _check_host_names(self) -> None:
        """KServe turns the name into host names (its default domain template ``{name}-{namespace}``,
        and the components' ``{name}-predictor``/``{name}-transformer``); each label must fit in 63
        characters, else the InferenceService is accepted and never reconciles."""
        components = ["predictor", *(["transformer"] if self.transformer else [])]
        if self.mode == "RawDeployment":
            labels = [f"{self.name}-{component}-{self.namespace}" for component in components]
        else:
            labels = [f"{self.name}-{self.namespace}", *(f"{self.name}-{c}" for c in components)]
        longest = max(labels, key=len)
        if len(longest) > HOST_LABEL_MAX:
            raise ValueError(
                f"name {self.name!r} in namespace {self.namespace!r} makes KServe's host name label "
                f"{longest!r} ({len(longest)} characters, at most {HOST_LABEL_MAX}): shorten the name or the "
                f"namespace by {len(longest) - HOST_LABEL_MAX}"
            )

    def resources(self) -> k8s.V1ResourceRequirements:
        limits: dict[str, str] = {"cpu": self.cpu, "memory": self.memory}
        if self.gpus:
            limits["nvidia.com/gpu"] = str(self.gpus)
        return k8s.V1ResourceRequirements(requests=dict(limits), limits=limits)

    def transformer_resources(self) -> k8s.V1ResourceRequirements:
        limits = {"cpu": self.transformer_cpu, "memory": self.transformer_memory}
        return k8s.V1ResourceRequirements(requests=dict(limits), limits=limits)


def _sanitize(model: Any) -> dict[str, Any]:
    from kserve import ApiClient

    return ApiClient().sanitize_for_serialization(model)


def inference_service(settings: DeploymentSettings):
    """The ``V1beta1InferenceService`` SDK object."""
    import kserve

    annotations = {
        "serving.kserve.io/deploymentMode": settings.mode,
        # KServe sets prometheus.io/{scrape,port,path} on the pods: /metrics carries nexus_predictor_*
        # (rules and dashboard: manifests/monitoring/)
        "serving.kserve.io/enable-prometheus-scraping": "true",
    }
    if settings.mode == "Serverless":
        annotations["autoscaling.knative.dev/target"] = str(settings.max_batch_size * 2)
        # one scrape port for the queue-proxy's and the model server's metrics
        annotations["serving.kserve.io/enable-metric-aggregation"] = "true"
    predictor = kserve.V1beta1PredictorSpec(
        min_replicas=settings.min_replicas,
        max_replicas=settings.max_replicas,
        canary_traffic_percent=settings.canary_percent,
        service_account_name=settings.service_account,
        model=kserve.V1beta1ModelSpec(
            model_format=kserve.V1beta1ModelFormat(name=MODEL_FORMAT, version="1"),
            runtime=settings.runtime_name,
            storage_uri=settings.storage_uri,
            protocol_version="v2",
            resources=settings.resources(),
        ),
    )
    transformer = None
    if settings.transformer:
        transformer = kserve.V1beta1TransformerSpec(
            min_replicas=settings.min_replicas,
            max_replicas=settings.max_replicas,
            containers=[
                _container(
                    settings.image,
                    # KServe appends --model_name, --predictor_host <name>-predictor.<namespace>, --http_port
                    ["--mode", "transformer", "--host", "0.0.0.0", *_client_facing_args(settings)],
                    _base_env(),
                    settings.transformer_resources(),
                )
            ],
        )
    return kserve.V1beta1InferenceService(
        api_version="serving.kserve.io/v1beta1",
        kind="InferenceService",
        metadata=k8s.V1ObjectMeta(
            name=settings.name,
            namespace=settings.namespace,
            annotations=annotations,
            labels={"app.kubernetes.io/part-of": "nexus"},
        ),
        spec=kserve.V1beta1InferenceServiceSpec(predictor=predictor, transformer=transformer),
    )


def _base_env() -> list[k8s.V1EnvVar]:
    return [
        k8s.V1EnvVar(name="ORT_DISABLE_TELEMETRY", value="1"),
        k8s.V1EnvVar(name="YOLO_OFFLINE", value="1"),
    ]


def _container(
    image: str, args: list[str], env: list[k8s.V1EnvVar], resources: k8s.V1ResourceRequirements
) -> k8s.V1Container:
    """Our serving image, ``python -m serving ARGS``, ready once ``/v2/health/ready`` answers."""
    return k8s.V1Container(
        name="kserve-container",
        image=image,
        command=["python", "-m", "serving"],
        args=args,
        env=env,
        ports=[k8s.V1ContainerPort(container_port=PORT, protocol="TCP")],
        resources=resources,
        readiness_probe=k8s.V1Probe(
            http_get=k8s.V1HTTPGetAction(path="/v2/health/ready", port=PORT), period_seconds=5
        ),
    )


def _client_facing_args(settings: DeploymentSettings) -> list[str]:
    """Arguments of the container clients call, which reads their bodies and decodes their images:
    ``--max-request-bytes N`` and ``--full-decode`` when the settings change the defaults."""
    args = []
    if settings.max_request_bytes is not None:
        args += ["--max-request-bytes", str(settings.max_request_bytes)]
    return [*args, *(["--full-decode"] if settings.full_decode else [])]


def serving_runtime(settings: DeploymentSettings):
    """The ``V1alpha1ServingRuntime`` SDK object: our image running ``python -m serving``.

    With a transformer the runtime runs the tensor predictor (``--mode tensor-predictor``, v2 only).
    It is not auto-selected for the model format: it only makes sense behind our transformer.
    """
    import kserve

    env = _base_env()
    if settings.s3_endpoint:
        env.append(k8s.V1EnvVar(name="S3_ENDPOINT", value=settings.s3_endpoint))
    mode = ["--mode", "tensor-predictor"] if settings.transformer else []
    args = [
        *mode, "--model", "/mnt/models", "--name", "{{.Name}}", "--host", "0.0.0.0", "--port", str(PORT),
        "--device", "0" if settings.gpus else "cpu",
        "--max-batch-size", str(settings.max_batch_size), "--max-delay-ms", str(settings.max_delay_ms),
        *([] if settings.transformer else _client_facing_args(settings)),
    ]  # fmt: skip
    return kserve.V1alpha1ServingRuntime(
        api_version="serving.kserve.io/v1alpha1",
        kind="ServingRuntime",
        metadata=k8s.V1ObjectMeta(name=settings.runtime_name, namespace=settings.namespace),
        spec=kserve.V1alpha1ServingRuntimeSpec(
            supported_model_formats=[
                kserve.V1alpha1SupportedModelFormat(
                    name=MODEL_FORMAT, version="1", auto_select=not settings.transformer
                )
            ],
            protocol_versions=["v2"] if settings.transformer else ["v1", "v2"],
            containers=[_container(settings.image, args, env, settings.resources())],
        ),
    )


def inference_service_manifest(settings: DeploymentSettings) -> dict[str, Any]:
    return _sanitize(inference_service(settings))


def serving_runtime_manifest(settings: DeploymentSettings) -> dict[str, Any]:
    return _sanitize(serving_runtime(settings))


def write_manifests(settings: DeploymentSettings, out_dir: str | Path) -> list[Path]:
    """Write ``<name>-servingruntime.yaml`` and ``<name>-inferenceservice.yaml``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for suffix, manifest in (
        ("servingruntime", serving_runtime_manifest(settings)),
        ("inferenceservice", inference_service_manifest(settings)),
    ):
        path = out / f"{settings.name}-{suffix}.yaml"
        path.write_text(yaml.safe_dump(manifest, sort_keys=False))
        written.append(path)
    return written
