"""The `recsys-kubeflow` stack: the same pipelines on Kubeflow Pipelines, state in remote stores.

- orchestrator `recsys-kubeflow` (Kubeflow Pipelines: each step runs in its own pod, from an image built
  from this repo by the local Docker image builder and pushed to the container registry),
- a remote artifact store (s3://, gs:// or az:// path; flavor chosen from the scheme),
- container registry and image builder,
- experiment tracker and model registry `recsys-mlflow-remote` on a shared MLflow tracking server
  (a local sqlite file is not reachable from pods).

Settings come from environment variables (names in SETTINGS, OPTIONAL, MLFLOW_AUTH). The tests register
the stack in a throw-away ZenML store but never run on it: that needs a cluster, a deployed ZenML server
and the kubeflow / s3 / gcp / azure integrations (`zenml integration install kubeflow s3`); see README.md.
"""

from __future__ import annotations

import os

from stacks.local import ensure_stack

STACK_NAME = "recsys-kubeflow"
SETTINGS = {
    "RECSYS_KUBE_CONTEXT": "kubectl context of the cluster that runs Kubeflow Pipelines",
    "RECSYS_ARTIFACT_STORE": "remote artifact store path, e.g. s3://my-bucket/zenml or gs://my-bucket/zenml",
    "RECSYS_CONTAINER_REGISTRY": "container registry URI the step images are pushed to, e.g. ghcr.io/me",
    "RECSYS_MLFLOW_TRACKING_URI": "MLflow tracking server URL reachable from the cluster, e.g. https://mlflow.me",
}
OPTIONAL = {"RECSYS_KUBEFLOW_HOST": "Kubeflow Pipelines API URL (default: found through the kube context)",
            "RECSYS_KUBEFLOW_NAMESPACE": "namespace Kubeflow Pipelines is deployed in (default: kubeflow)"}
# A remote MLflow needs exactly one way in. Values may be ZenML secret references ("{{mlflow.token}}") so
# that no credential is stored in the component's configuration.
MLFLOW_AUTH = {"RECSYS_MLFLOW_TRACKING_TOKEN": "tracking_token", "RECSYS_MLFLOW_USERNAME": "tracking_username",
               "RECSYS_MLFLOW_PASSWORD": "tracking_password"}
# Pipeline settings every run on this stack gets (run.py passes them with the config file): the step image
# is built from requirements.txt; on the local stack ZenML would only warn that nothing uses them.
RUN_SETTINGS = {"docker": {"requirements": "requirements.txt", "environment": {"TF_USE_LEGACY_KERAS": "1"}}}
ARTIFACT_STORE_FLAVORS = {"s3": "s3", "gs": "gcp", "az": "azure", "abfs": "azure"}


class MissingSettingsError(RuntimeError):
    """The kubeflow stack cannot be registered: settings are missing or invalid."""


def read_settings(env=os.environ) -> dict[str, str]:
    """The SETTINGS, OPTIONAL and MLFLOW_AUTH values set in `env`; MissingSettingsError names every missing
    required one, a wrong MLflow authentication combination or an unsupported artifact store scheme."""
    missing = [name for name in SETTINGS if not env.get(name)]
    if missing:
        lines = "\n".join(f"  {name}: {SETTINGS[name]}" for name in missing)
        raise MissingSettingsError(f"the kubeflow stack needs these environment variables:\n{lines}\n"
                                   "(see stacks/README.md)")
    values = {name: env[name] for name in [*SETTINGS, *OPTIONAL, *MLFLOW_AUTH] if env.get(name)}
    auth = {name for name in MLFLOW_AUTH if name in values}
    if auth not in ({"RECSYS_MLFLOW_TRACKING_TOKEN"}, {"RECSYS_MLFLOW_USERNAME", "RECSYS_MLFLOW_PASSWORD"}):
        raise MissingSettingsError("the remote MLflow needs exactly one authentication method: "
                                   "RECSYS_MLFLOW_TRACKING_TOKEN, or RECSYS_MLFLOW_USERNAME with "
                                   "RECSYS_MLFLOW_PASSWORD "
                                   f"(got {sorted(auth) or 'none'}; see stacks/README.md)")
    scheme = values["RECSYS_ARTIFACT_STORE"].split("://", 1)[0]
    if scheme not in ARTIFACT_STORE_FLAVORS:
        raise MissingSettingsError(f"RECSYS_ARTIFACT_STORE must start with one of "
                                   f"{[s + '://' for s in ARTIFACT_STORE_FLAVORS]}, got {scheme!r}")
    return values


def components(values: dict[str, str]) -> dict:
    from zenml.enums import StackComponentType as T

    orchestrator = {"kubernetes_context": values["RECSYS_KUBE_CONTEXT"],
                    "kubeflow_namespace": values.get("RECSYS_KUBEFLOW_NAMESPACE", "kubeflow")}
    if values.get("RECSYS_KUBEFLOW_HOST"):
        orchestrator["kubeflow_hostname"] = values["RECSYS_KUBEFLOW_HOST"]
    store = values["RECSYS_ARTIFACT_STORE"]
    return {
        T.ORCHESTRATOR: (STACK_NAME, "kubeflow", orchestrator),
        T.ARTIFACT_STORE: (STACK_NAME, ARTIFACT_STORE_FLAVORS[store.split("://", 1)[0]], {"path": store}),
        T.CONTAINER_REGISTRY: (STACK_NAME, "default", {"uri": values["RECSYS_CONTAINER_REGISTRY"]}),
        T.IMAGE_BUILDER: (STACK_NAME, "local", {}),
        T.EXPERIMENT_TRACKER: ("recsys-mlflow-remote", "mlflow", {
            "tracking_uri": values["RECSYS_MLFLOW_TRACKING_URI"],
            **{field: values[name] for name, field in MLFLOW_AUTH.items() if name in values}}),
        T.MODEL_REGISTRY: ("recsys-mlflow-remote", "mlflow", {}),
    }


def register_kubeflow_stack() -> str:
    """Register and activate `recsys-kubeflow` from the environment; returns the stack name."""
    from zenml.client import Client

    return ensure_stack(Client(), STACK_NAME, components(read_settings()))
