"""Step: Kubernetes manifests for the recorded bento (recsys/deploy/manifests.py), written and validated
under `<output_dir>/<bento version>/` (shared as steps/locations.py says): configmap.yaml, deployment.yaml,
service.yaml, horizontalpodautoscaler.yaml; `kubectl apply -f <that dir>` deploys it.

`serve_from` says where the pods get the model: `registry` (default) follows `models:/<name>@production`
on `cluster_tracking_uri` and hot-swaps promotions, and with the canary on, serves `@<canary alias>` to
the treatment share; `bento` serves the model packed in the image (immutable: a new model is a new image).
"""

from typing import Annotated, Any, Dict, Optional

from zenml import step
from zenml.logger import get_logger

from bentos.settings import ENV
from recsys.deploy.canary import CanarySettings
from recsys.deploy.manifests import ManifestSettings, render, write
from recsys.streaming.config import ENV as STREAM_ENV
from steps.locations import state_location
from steps.names import MANIFESTS

logger = get_logger(__name__)
# Also read by the service: RECSYS_REDIS (feature_store_redis.yaml), RECSYS_SERVING_CONFIG (bentos/settings.py),
# the Kafka connection's KAFKA_* (recsys/streaming/config.py) except the password: secrets go in a Secret
# (`manifests.secret`), never in a ConfigMap.
SECRET_ENV = {"KAFKA_SASL_PASSWORD", "MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_PASSWORD"}


@step(enable_cache=False)
def render_manifests(deployment: Dict[str, Any], image_repository: str, canary: Optional[Dict[str, Any]] = None,
                     serve_from: str = "registry", cluster_tracking_uri: Optional[str] = None,
                     manifests: Optional[Dict[str, Any]] = None,
                     output_dir: str = "data/deploy/manifests") -> Annotated[Dict[str, Any], MANIFESTS]:
    settings = ManifestSettings.model_validate(manifests or {})
    canary_settings = CanarySettings.model_validate(canary or {})
    name = deployment["name"]
    if serve_from == "bento":
        if canary_settings.enabled:
            raise ValueError("a canary needs serve_from: registry (the treatment follows an MLflow alias)")
        env = {"RECSYS_MODEL": f"bento:{deployment['model_tag']}", "RECSYS_RELOAD_INTERVAL": "0"}
    elif serve_from == "registry":
        if not cluster_tracking_uri:
            raise ValueError("serve_from: registry needs cluster_tracking_uri (the MLflow server the pods reach)")
        env = {"RECSYS_MODEL": f"models:/{name}@production", "MLFLOW_TRACKING_URI": cluster_tracking_uri,
               "RECSYS_RELOAD_INTERVAL": "30"}
        if canary_settings.enabled:
            env.update({"RECSYS_EXPERIMENT": canary_settings.experiment,
                        "RECSYS_TREATMENT_MODEL": f"models:/{name}@{canary_settings.alias}",
                        "RECSYS_TREATMENT_SHARE": str(canary_settings.share)})
    else:
        raise ValueError(f"serve_from must be 'registry' or 'bento', got {serve_from!r}")
    annotations = {"recsys/bento": deployment["bento_tag"], "recsys/mlflow-model": name,
                   "recsys/mlflow-version": str(deployment["version"])}
    kafka = {name for name, (section, _) in STREAM_ENV.items() if section == "kafka"}
    objects = render(settings, f"{image_repository}:{deployment['bento_version']}", env, annotations,
                     known_env=(set(ENV) | kafka | {"RECSYS_REDIS", "RECSYS_SERVING_CONFIG"}) - SECRET_ENV)
    directory = state_location(output_dir).child(deployment["bento_version"])
    files = write(objects, directory.local)
    directory.push()
    logger.info("manifests for %s (%s) -> %s: %s; apply with: kubectl apply -f %s", deployment["bento_tag"],
                serve_from, directory.shared, ", ".join(f.name for f in files), directory.shared)
    return {"directory": directory.shared, "files": [f.name for f in files], "serve_from": serve_from,
            "image": f"{image_repository}:{deployment['bento_version']}",
            "summary": f"manifests: kubectl apply -f {directory.shared}"}
