"""Apply a registered version to a KServe cluster as an InferenceService (canary by ``canaryTrafficPercent``).

Example:
    >>> cluster = kserve_settings_for(settings, "nexus-detector", "3", "nexus-detector", 10)  # doctest: +SKIP
    >>> deploy_to_kserve(cluster)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from nexus.errors import DeploymentError
from nexus.registry import ModelRegistry
from nexus.serving.manifests import (
    DeploymentSettings,
    check_inference_service_name,
    check_namespace,
    inference_service_manifest,
    serving_runtime_manifest,
)
from nexus.settings import NexusSettings

REMOTE_SCHEMES = ("s3://", "gs://", "pvc://", "https://")
# Fields the generator leaves out for some settings. A merge patch keeps what it does not mention, so a
# redeploy sends them as null: dropping the transformer, the canary or the service account removes them.
REMOVABLE_FIELDS = {
    "inferenceservices": (
        ("metadata", "annotations", "autoscaling.knative.dev/target"),
        ("metadata", "annotations", "serving.kserve.io/enable-metric-aggregation"),
        ("spec", "predictor", "canaryTrafficPercent"),
        ("spec", "predictor", "serviceAccountName"),
        ("spec", "transformer"),
    ),
}


def kserve_settings_for(
    settings: NexusSettings,
    registered_model: str,
    version: str,
    deployment: str,
    canary_percent: float,
    namespace: str = "default",
    transformer: bool = False,
) -> DeploymentSettings | None:
    """Cluster settings for serving ``version``; ``None`` when its artifacts are not on remote storage.

    A cluster can only pull models from remote storage (S3/MinIO): with the embedded MLflow store the
    artifacts are local files and there is nothing a cluster could load.
    """
    source = ModelRegistry(settings, registered_model).require(version).source
    if not source.startswith(REMOTE_SCHEMES):
        return None
    try:
        return DeploymentSettings(
            name=deployment,
            storage_uri=source,
            namespace=namespace,
            canary_percent=round(canary_percent),
            transformer=transformer,
        )
    except ValueError as error:
        raise DeploymentError(str(error)) from error


def deploy_to_kserve(cluster: DeploymentSettings | None) -> dict[str, Any]:
    """Create or patch the ServingRuntime and the InferenceService in the cluster of the current kubeconfig.

    Raises:
        DeploymentError: the model is not on remote storage, or no cluster is configured or reachable.
    """
    if cluster is None:
        raise DeploymentError(
            "the registered model's artifacts are local files; a KServe cluster needs them on S3/MinIO: "
            "point the MLflow artifact store at s3:// (mlflow server --default-artifact-root s3://...)"
        )
    api = _custom_objects_api()
    # the ServingRuntime first: an InferenceService naming a runtime that does not exist never becomes ready
    _apply(api, serving_runtime_manifest(cluster), "servingruntimes", cluster.namespace)
    return _apply(api, inference_service_manifest(cluster), "inferenceservices", cluster.namespace)


def set_canary_traffic(name: str, namespace: str, percent: int) -> dict[str, Any]:
    """Steer a KServe canary: ``percent`` of the traffic to the predictor's latest revision; returns
    the InferenceService's name, namespace and ``canaryTrafficPercent`` as the cluster answered.

    100 promotes it, 0 rolls back to the previous ready revision (KServe keeps it), anything between
    re-splits the traffic. Patches ``spec.predictor.canaryTrafficPercent``; with a transformer the
    predictor's revisions are what the canary rolls out.

    Raises:
        DeploymentError: the percent is out of range, the InferenceService does not exist, or the
            cluster refused or could not be reached.
    """
    if isinstance(percent, bool) or not isinstance(percent, int) or not 0 <= percent <= 100:
        raise DeploymentError(f"canaryTrafficPercent must be a whole number within [0, 100], got {percent!r}")
    _check_names(name, namespace)
    api = _custom_objects_api()
    patch = {"spec": {"predictor": {"canaryTrafficPercent": percent}}}
    with _kube_errors(f"the InferenceService {name!r} in namespace {namespace!r}"):
        applied = api.patch_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name, patch
        )
    spec = applied.get("spec") if isinstance(applied, dict) else None
    predictor = spec.get("predictor") if isinstance(spec, dict) else None
    predictor = predictor if isinstance(predictor, dict) else {}
    return {
        "inferenceservice": name,
        "namespace": namespace,
        "canaryTrafficPercent": predictor.get("canaryTrafficPercent"),
    }


def get_inference_service(name: str, namespace: str) -> dict[str, Any]:
    """The InferenceService as the cluster has it, status included.

    Raises:
        DeploymentError: it does not exist, or the cluster refused or could not be reached.
    """
    _check_names(name, namespace)
    api = _custom_objects_api()
    what = f"the InferenceService {name!r} in namespace {namespace!r}"
    with _kube_errors(what):
        found = api.get_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", namespace, "inferenceservices", name
        )
    if not isinstance(found, dict):
        raise DeploymentError(
            f"the cluster answered {what} with {type(found).__name__} {str(found)[:80]!r}, not an object: "
            "is the kubeconfig's server a Kubernetes API server?"
        )
    return found


def _check_names(name: str, namespace: str) -> None:
    """An InferenceService name and namespace Kubernetes could hold, before asking for them."""
    try:
        check_inference_service_name(name)
        check_namespace(namespace)
    except ValueError as error:
        raise DeploymentError(f"{error}; pass the InferenceService's name and namespace") from error


def _custom_objects_api() -> Any:
    """The CustomObjectsApi of the current kubeconfig (or of the pod's service account)."""
    import yaml
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        # KUBECONFIG as it is now: the client reads it once, at import
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"))
    # a file that is not YAML, or YAML of another shape, fails inside the client with these
    except (
        ConfigException,
        OSError,
        yaml.YAMLError,
        TypeError,
        AttributeError,
        KeyError,
        ValueError,
    ) as kube_error:
        try:
            config.load_incluster_config()
        except ConfigException:
            raise DeploymentError(
                f"no Kubernetes cluster configured (kubeconfig: {' '.join(str(kube_error).split())}); "
                "use target 'local' or set KUBECONFIG"
            ) from kube_error
    return client.CustomObjectsApi()


@contextlib.contextmanager
def _kube_errors(what: str) -> Iterator[None]:
    """API refusals and connection failures as a ``DeploymentError`` naming ``what``."""
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        yield
    except ApiException as error:
        if error.status == 404:
            raise DeploymentError(f"the cluster has no {what.removeprefix('the ')}") from error
        raise DeploymentError(f"the cluster refused {what}: {error.status} {error.reason}") from error
    except HTTPError as error:
        raise DeploymentError(f"cannot reach the Kubernetes API server for {what}: {error}") from error


def _merge_patch(manifest: dict[str, Any], plural: str) -> dict[str, Any]:
    """``manifest`` as a JSON merge patch that leaves nothing of an earlier version behind: each
    ``REMOVABLE_FIELDS`` entry it lacks is sent as null (deleted)."""
    import copy

    patch = copy.deepcopy(manifest)
    for path in REMOVABLE_FIELDS.get(plural, ()):
        node = patch
        for key in path[:-1]:
            node = node.setdefault(key, {})
        node.setdefault(path[-1], None)
    return patch


def _apply(api: Any, manifest: dict[str, Any], plural: str, namespace: str) -> dict[str, Any]:
    """Patch the object if it exists, else create it."""
    from kubernetes.client.exceptions import ApiException

    group, version = manifest["apiVersion"].split("/")
    name = manifest["metadata"]["name"]
    patch = _merge_patch(manifest, plural)
    with _kube_errors(f"the {manifest['kind']} {name!r} in namespace {namespace!r}"):
        try:
            return api.patch_namespaced_custom_object(group, version, namespace, plural, name, patch)
        except ApiException as error:
            if error.status != 404:
                raise
        try:
            return api.create_namespaced_custom_object(group, version, namespace, plural, manifest)
        except ApiException as error:
            if error.status != 404:
                raise
            raise DeploymentError(
                f"the cluster serves no {plural} in namespace {namespace!r}: is KServe installed, "
                "and does the namespace exist?"
            ) from error
