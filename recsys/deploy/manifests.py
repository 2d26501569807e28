"""Kubernetes manifests for a built recommender bento: ConfigMap, Deployment, Service, HorizontalPodAutoscaler.

Where this sits: the deploy pipeline (pipelines/deploy.py) renders them once the bento passed its smoke
test, into `<manifests_dir>/<bento version>/` (configs/deploy.yaml), for `kubectl apply -f <that dir>`.
The image is the bento containerized (`bentoml containerize <bento tag> -t <image>`); the container runs
`bentoml serve` on port 3000 and reads its settings from environment variables (bentos/serving.yaml lists
them), which the ConfigMap holds: the model reference, where feedback goes (Kafka), the online feature
store (Redis), the A/B experiment (the canary). Pods are ready once the model is loaded (/readyz) and
restarted only when the process hangs (/livez answers as soon as the server runs).

The objects are plain dicts (they read like the YAML they become), each checked against the Kubernetes
API types of the official client (`kubernetes` package): `validate` round-trips every object through the
client's model classes, so a misspelt or misplaced key fails here, not at `kubectl apply`.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

# kind -> (apiVersion, the kubernetes client model class name)
KINDS = {"ConfigMap": ("v1", "V1ConfigMap"), "Deployment": ("apps/v1", "V1Deployment"),
         "Service": ("v1", "V1Service"), "HorizontalPodAutoscaler": ("autoscaling/v2", "V2HorizontalPodAutoscaler")}
BENTO_SRC = "/home/bentoml/bento/src"  # the bento's code in BentoML's image; relative paths start here
LOG_MOUNT = "/var/log/recsys"
PORT = 3000  # `bentoml serve` in BentoML's image


class ManifestSettings(BaseModel):
    """The target's values (configs/deploy.yaml `manifests`); the env values come from the deploy step."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("recommender", description="name of every object, and the app label")
    namespace: str | None = Field(None, description="namespace of every object (null: kubectl's current one)")
    replicas: int = Field(2, ge=1, description="initial replicas (the autoscaler takes over)")
    min_replicas: int = Field(2, ge=1)
    max_replicas: int = Field(6, ge=1)
    target_cpu_utilization: int = Field(70, ge=1, le=100, description="autoscaler target, % of the CPU request")
    cpu_request: str = "1"
    memory_request: str = "2Gi"
    cpu_limit: str | None = "2"
    memory_limit: str | None = "3Gi"
    service_port: int = Field(80, description="port of the ClusterIP Service in front of the pods")
    state_volume_claim: str | None = Field(
        None, description="PersistentVolumeClaim holding the project's data/ (the Feast registry a bundle with "
                          "store features needs), mounted read-only at <bento src>/data; null: none")
    log_volume_claim: str | None = Field(
        None, description="PersistentVolumeClaim (ReadWriteMany) for the experiment logs the canary readout "
                          "reads: each pod writes under <mount>/<pod name>; null: logs stay in the pod")
    env: dict[str, str] = Field(default_factory=dict, description="extra ConfigMap entries (e.g. RECSYS_REDIS)")
    secret: str | None = Field(None, description="a Secret whose keys become environment variables too (e.g. "
                                                 "KAFKA_SASL_PASSWORD, MLFLOW_TRACKING_TOKEN); you create it")


def render(settings: ManifestSettings, image: str, env: dict[str, str], annotations: dict[str, str],
           known_env: set[str] | None = None) -> list[dict]:
    """The four objects for `image` (`<repository>:<tag>`) whose service reads `env` (merged with
    `settings.env`). `known_env`: the variable names the service reads; any other name is refused (a
    typo would be ignored silently by the service). `annotations` go on the Deployment and its pods."""
    # Writable places for the MLflow download cache and the experiment logs: the bento's data/ may be the
    # read-only state volume. A log volume overrides the log directory per pod (container env wins).
    data = {"RECSYS_CACHE_DIR": "/tmp/recsys/bundles", "RECSYS_LOG_DIR": "/tmp/recsys/logs", **env, **settings.env}
    unknown = sorted(set(data) - known_env) if known_env is not None else []
    if unknown:
        raise ValueError(f"ConfigMap entries the service does not read: {unknown}")
    if settings.max_replicas > 1 and not data.get("KAFKA_BOOTSTRAP_SERVERS"):
        raise ValueError("more than one replica needs feedback through Kafka (KAFKA_BOOTSTRAP_SERVERS): feedback "
                         "applied in place reaches one pod only")
    if settings.min_replicas > settings.max_replicas:
        raise ValueError(f"min_replicas {settings.min_replicas} exceeds max_replicas {settings.max_replicas}")
    name, labels = settings.name, {"app.kubernetes.io/name": settings.name, "app.kubernetes.io/component": "serving"}
    version = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else "latest"
    meta = {"name": name, "labels": {**labels, "app.kubernetes.io/version": version[:63]},
            **({"namespace": settings.namespace} if settings.namespace else {})}
    data = {key: str(value) for key, value in sorted(data.items()) if value is not None}
    # A changed ConfigMap must roll the pods: the service reads its environment at start-up only.
    config_hash = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    resources = {"requests": {"cpu": settings.cpu_request, "memory": settings.memory_request}}
    limits = {k: v for k, v in (("cpu", settings.cpu_limit), ("memory", settings.memory_limit)) if v}
    if limits:
        resources["limits"] = limits
    container = {
        "name": "recommender", "image": image,
        "ports": [{"name": "http", "containerPort": PORT}],
        "envFrom": [{"configMapRef": {"name": f"{name}-config"}},
                    *([{"secretRef": {"name": settings.secret}}] if settings.secret else [])],
        "resources": resources,
        # Ready once the model is loaded (the bundle loads in the background after start-up).
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 5,
                           "timeoutSeconds": 3, "failureThreshold": 3},
        # /livez answers as soon as the server runs; restart only a hung process.
        "livenessProbe": {"httpGet": {"path": "/livez", "port": "http"}, "initialDelaySeconds": 10,
                          "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 6},
    }
    pod = {"containers": [container]}
    mounts, volumes = [], []
    if settings.state_volume_claim:
        mounts.append({"name": "state", "mountPath": f"{BENTO_SRC}/data", "readOnly": True})
        volumes.append({"name": "state", "persistentVolumeClaim": {"claimName": settings.state_volume_claim,
                                                                   "readOnly": True}})
    if settings.log_volume_claim:  # one directory per pod: worker pids repeat across pods
        mounts.append({"name": "logs", "mountPath": LOG_MOUNT})
        volumes.append({"name": "logs", "persistentVolumeClaim": {"claimName": settings.log_volume_claim}})
        container["env"] = [{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "RECSYS_LOG_DIR", "value": f"{LOG_MOUNT}/$(POD_NAME)"}]
    if mounts:
        container["volumeMounts"], pod["volumes"] = mounts, volumes
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {**meta, "name": f"{name}-config"}, "data": data},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {**meta, "annotations": annotations},
         "spec": {"replicas": settings.replicas, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels,
                                            "annotations": {**annotations, "recsys/config-hash": config_hash}},
                               "spec": pod}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": meta,
         "spec": {"type": "ClusterIP", "selector": labels,
                  "ports": [{"name": "http", "port": settings.service_port, "targetPort": "http"}]}},
        {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": meta,
         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                  "minReplicas": settings.min_replicas, "maxReplicas": settings.max_replicas,
                  "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {
                      "type": "Utilization", "averageUtilization": settings.target_cpu_utilization}}}]}},
    ]


def validate(obj: dict) -> None:
    """Raise ValueError unless `obj` is exactly an object of its kind: every key a field of the Kubernetes
    API type (the kubernetes client's models, which also check required fields), nothing dropped."""
    from kubernetes.client import ApiClient

    kind = obj.get("kind")
    if kind not in KINDS:
        raise ValueError(f"unexpected kind {kind!r}; expected one of {sorted(KINDS)}")
    if obj.get("apiVersion") != KINDS[kind][0]:
        raise ValueError(f"{kind}: apiVersion {obj.get('apiVersion')!r}, expected {KINDS[kind][0]!r}")

    class Response:  # what ApiClient.deserialize reads: a response body
        data = json.dumps(obj)

    client = ApiClient()
    try:
        model = client.deserialize(Response(), KINDS[kind][1])
    except (ValueError, TypeError) as error:
        raise ValueError(f"{kind} {obj.get('metadata', {}).get('name')}: {error}") from None
    again = client.sanitize_for_serialization(model)
    if again != obj:
        raise ValueError(f"{kind} {obj.get('metadata', {}).get('name')}: keys the API does not know or values of "
                         f"the wrong type: {_difference(obj, again)}")


def _difference(given, known, path="") -> list[str]:
    if isinstance(given, dict) and isinstance(known, dict):
        out = [f"{path}.{k}".lstrip(".") for k in given if k not in known]
        return out + [d for k in given if k in known for d in _difference(given[k], known[k], f"{path}.{k}")]
    if isinstance(given, list) and isinstance(known, list) and len(given) == len(known):
        return [d for i, (a, b) in enumerate(zip(given, known)) for d in _difference(a, b, f"{path}[{i}]")]
    return [] if given == known else [f"{path.lstrip('.')}: {given!r}"]


def write(objects: list[dict], directory: str | Path) -> list[Path]:
    """Validate each object, write it to `<directory>/<kind lower-case>.yaml`, read it back and validate
    what was written; returns the files (an existing directory's YAML files are replaced)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.yaml"):
        stale.unlink()
    files = []
    for obj in objects:
        validate(obj)
        path = directory / f"{obj['kind'].lower()}.yaml"
        path.write_text(yaml.dump(obj, Dumper=_PlainDumper, sort_keys=False))
        validate(yaml.safe_load(path.read_text()))
        files.append(path)
    return files


class _PlainDumper(yaml.SafeDumper):
    """No YAML anchors/aliases (&id001) for objects used twice: manifests are read by people and tools."""

    def ignore_aliases(self, data):
        return True


def read(directory: str | Path) -> list[dict]:
    """Every object of the YAML files in `directory`, each validated (the unit tests and docs use it)."""
    objects = [obj for path in sorted(Path(directory).glob("*.yaml")) for obj in yaml.safe_load_all(path.read_text())]
    for obj in objects:
        validate(obj)
    return objects
