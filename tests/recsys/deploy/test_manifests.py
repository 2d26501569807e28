"""Kubernetes manifests of a deployment: what the cluster gets (probes on /readyz and /livez, the image, the
ConfigMap the service reads), validated against the Kubernetes API types, and refused when wrong."""

import copy

import pytest
import yaml

from bentos.settings import ENV
from recsys.deploy.manifests import ManifestSettings, read, render, validate, write

KNOWN = set(ENV) | {"RECSYS_REDIS"}
ENV_VALUES = {"RECSYS_MODEL": "models:/travel-recommender@production", "MLFLOW_TRACKING_URI": "http://mlflow:5000",
              "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092", "RECSYS_REDIS": "redis:6379"}


def objects(**settings):
    return render(ManifestSettings(**settings), "ghcr.io/me/recommender:abc123", ENV_VALUES,
                  {"recsys/bento": "recommender:abc123"}, known_env=KNOWN)


def by_kind(objs):
    return {obj["kind"]: obj for obj in objs}


def test_the_four_objects_wire_together(tmp_path):
    files = write(objects(namespace="recsys", state_volume_claim="state", log_volume_claim="logs",
                          secret="recsys-secrets"), tmp_path)
    assert sorted(f.name for f in files) == ["configmap.yaml", "deployment.yaml", "horizontalpodautoscaler.yaml",
                                             "service.yaml"]
    assert "&id" not in "".join(f.read_text() for f in files)  # no YAML anchors
    kinds = by_kind(read(tmp_path))
    config, deployment, service, hpa = (kinds[k] for k in ("ConfigMap", "Deployment", "Service",
                                                            "HorizontalPodAutoscaler"))
    assert {o["metadata"]["namespace"] for o in kinds.values()} == {"recsys"}
    pod = deployment["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert container["image"] == "ghcr.io/me/recommender:abc123"
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 3000}]
    assert container["envFrom"] == [{"configMapRef": {"name": config["metadata"]["name"]}},
                                    {"secretRef": {"name": "recsys-secrets"}}]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert config["data"]["RECSYS_MODEL"] == ENV_VALUES["RECSYS_MODEL"] and config["data"]["RECSYS_REDIS"]
    assert set(config["data"]) <= KNOWN
    # Logs: a directory per pod on the shared volume; the bento's data/ read-only from the state volume, so the
    # download cache goes elsewhere.
    env = {e["name"]: e for e in container["env"]}
    assert env["RECSYS_LOG_DIR"]["value"] == "/var/log/recsys/$(POD_NAME)"
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert {"name": "state", "mountPath": "/home/bentoml/bento/src/data", "readOnly": True} in container["volumeMounts"]
    assert config["data"]["RECSYS_CACHE_DIR"].startswith("/tmp/")


def test_a_changed_config_rolls_the_pods():
    first = by_kind(objects())["Deployment"]["spec"]["template"]["metadata"]["annotations"]["recsys/config-hash"]
    changed = render(ManifestSettings(), "r:abc", {**ENV_VALUES, "RECSYS_RELOAD_INTERVAL": "60"}, {}, known_env=KNOWN)
    assert by_kind(changed)["Deployment"]["spec"]["template"]["metadata"]["annotations"]["recsys/config-hash"] != first


def test_refused_settings():
    with pytest.raises(ValueError, match="RECSYS_MODLE"):  # a typo the service would silently ignore
        render(ManifestSettings(), "r:1", {**ENV_VALUES, "RECSYS_MODLE": "x"}, {}, known_env=KNOWN)
    with pytest.raises(ValueError, match="Kafka"):  # in-place feedback would reach one pod of several
        render(ManifestSettings(), "r:1", {"RECSYS_MODEL": "x"}, {}, known_env=KNOWN)
    assert render(ManifestSettings(replicas=1, min_replicas=1, max_replicas=1), "r:1", {"RECSYS_MODEL": "x"}, {})
    with pytest.raises(ValueError, match="min_replicas"):
        render(ManifestSettings(min_replicas=5, max_replicas=2), "r:1", ENV_VALUES, {})


@pytest.mark.parametrize("break_it, message", [
    (lambda d: d["spec"].update(replica=3), "spec.replica"),                                       # misspelt
    (lambda d: d["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"].update(pth="/"),
     "httpGet.pth"),
    (lambda d: d["spec"]["template"]["spec"]["containers"][0].pop("name"), "name"),               # required
    (lambda d: d.update(apiVersion="extensions/v1beta1"), "apiVersion"),
    (lambda d: d.update(kind="Deploymnet"), "kind"),
])
def test_validation_catches_what_kubectl_would_refuse(break_it, message):
    deployment = copy.deepcopy(by_kind(objects())["Deployment"])
    validate(deployment)
    break_it(deployment)
    with pytest.raises(ValueError, match=message):
        validate(deployment)


def test_written_files_are_checked_as_read(tmp_path):
    write(objects(), tmp_path)
    path = tmp_path / "service.yaml"
    service = yaml.safe_load(path.read_text())
    service["spec"]["ports"][0]["port"] = "eighty"  # the wrong type
    path.write_text(yaml.safe_dump(service))
    with pytest.raises(ValueError, match="Service"):
        read(tmp_path)
