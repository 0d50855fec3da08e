"""``deploy``, ``promote``, ``rollback``, ``guard``: move registered versions through a canary rollout."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from components.image import NEXUS_IMAGE


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def deploy(
    version: str,
    manifests: Output[Artifact],
    deployment: str = "nexus-detector",
    canary_percent: float = 10.0,
    target: str = "local",
    registered_model: str = "nexus-detector",
    namespace: str = "default",
    kserve_transformer: bool = False,
) -> str:
    """Serve ``version`` as a canary at ``canary_percent`` (the champion if nothing is deployed).

    ``target="local"`` updates the local deployment (and restarts its server if one runs);
    ``target="kserve"`` applies our ServingRuntime and an InferenceService with
    ``canaryTrafficPercent`` to the configured cluster; with ``kserve_transformer`` it is the split
    deployment (a CPU transformer in front of a tensor predictor). KServe manifests are written to
    ``manifests`` when the model is on remote storage. Returns the deployment as JSON.
    """
    import json
    from pathlib import Path

    from nexus.serving.kserve_apply import deploy_to_kserve, kserve_settings_for
    from nexus.serving.manifests import write_manifests
    from nexus.serving.rollout import deploy_version
    from nexus.settings import NexusSettings

    settings = NexusSettings.from_env()
    cluster = kserve_settings_for(
        settings, registered_model, version, deployment, canary_percent, namespace, kserve_transformer
    )
    Path(manifests.path).mkdir(parents=True, exist_ok=True)
    if cluster is not None:
        write_manifests(cluster, Path(manifests.path))
    if target == "kserve":
        return json.dumps(deploy_to_kserve(cluster))
    if target != "local":
        raise ValueError(f"target must be 'local' or 'kserve', got {target!r}")
    record = deploy_version(settings, deployment, version, canary_percent, registered_model)
    return json.dumps(record.to_dict())


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def promote(deployment: str = "nexus-detector", target: str = "local", namespace: str = "default") -> str:
    """Make the canary's challenger the champion; returns the champion version.

    ``target="kserve"``: the InferenceService ``deployment`` gets ``canaryTrafficPercent`` 100; returns
    the InferenceService's name, namespace and percent as JSON.
    """
    import json

    from nexus.serving.kserve_apply import set_canary_traffic
    from nexus.serving.rollout import promote_deployment
    from nexus.settings import NexusSettings

    if target == "kserve":
        return json.dumps(set_canary_traffic(deployment, namespace, 100))
    if target != "local":
        raise ValueError(f"target must be 'local' or 'kserve', got {target!r}")
    return str(promote_deployment(NexusSettings.from_env(), deployment).champion)


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def rollback(deployment: str = "nexus-detector", target: str = "local", namespace: str = "default") -> str:
    """Drop the challenger, or restore the previous champion; returns the champion version.

    ``target="kserve"``: the InferenceService ``deployment`` gets ``canaryTrafficPercent`` 0 (its
    previous ready revision serves); returns the InferenceService's name, namespace and percent as JSON.
    """
    import json

    from nexus.serving.kserve_apply import set_canary_traffic
    from nexus.serving.rollout import rollback_deployment
    from nexus.settings import NexusSettings

    if target == "kserve":
        return json.dumps(set_canary_traffic(deployment, namespace, 0))
    if target != "local":
        raise ValueError(f"target must be 'local' or 'kserve', got {target!r}")
    return str(rollback_deployment(NexusSettings.from_env(), deployment).champion)


@dsl.component(base_image=NEXUS_IMAGE, install_kfp_package=False)
def guard(
    deployment: str,
    prometheus_url: str,
    namespace: str = "default",
    window: str = "5m",
    min_requests: int = 20,
    max_error_rate_margin: float = 0.05,
    max_p95_margin: float = 0.5,
) -> str:
    """Check a KServe canary once and roll it back when its revision is worse (``nexus deploy guard``);
    returns the decision (revisions, their health, the reason, whether it rolled back) as JSON."""
    import json

    from nexus.serving.kserve_guard import CanaryGuardPolicy, guard_canary

    policy = CanaryGuardPolicy(window, min_requests, max_error_rate_margin, max_p95_margin)
    return json.dumps(guard_canary(deployment, namespace, prometheus_url, policy).to_dict())
