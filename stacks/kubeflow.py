"""The `recsys-kubeflow` stack: the same pipelines on Kubeflow Pipelines, state in remote stores.

- orchestrator `recsys-kubeflow` (flavor `recsys_kubeflow`: ZenML's Kubeflow orchestrator with working
  resource requests, stacks/kubeflow_orchestrator.py; each step runs in its own pod, from an image built
  from this repo by the local Docker image builder and pushed to the container registry),
- a remote artifact store (s3://, gs:// or az:// path; flavor chosen from the scheme),
- container registry and image builder,
- experiment tracker and model registry `recsys-mlflow-remote` on a shared MLflow tracking server
  (a local sqlite file is not reachable from pods).

Settings come from environment variables (names in SETTINGS, OPTIONAL, MLFLOW_AUTH). `run_options` is what
every run on the stack gets besides its config file: how the step image is built, the environment of the
step pods (RECSYS_STATE_ROOT: where steps hand over files, recsys/storage.py) and resource requests of the
heavy steps. tests/pipelines/test_kubeflow_compile.py compiles every pipeline with them to the KFP spec a
cluster would receive; no pipeline has run on a cluster from this repo's tests. See stacks/README.md.
"""

from __future__ import annotations

import os
from pathlib import Path

from recsys.storage import STATE_ROOT_ENV
from stacks.local import ensure_stack

STACK_NAME = "recsys-kubeflow"
PROJECT_DIR = Path(__file__).resolve().parents[1]  # the image's build context and requirements.txt
FLAVOR_NAME = "recsys_kubeflow"  # orchestrator flavor, defined in FLAVOR_SOURCE
FLAVOR_SOURCE = "stacks.kubeflow_orchestrator.RecsysKubeflowOrchestratorFlavor"
SETTINGS = {
    "RECSYS_KUBE_CONTEXT": "kubectl context of the cluster that runs Kubeflow Pipelines",
    "RECSYS_ARTIFACT_STORE": "remote artifact store path, e.g. s3://my-bucket/zenml or gs://my-bucket/zenml",
    "RECSYS_CONTAINER_REGISTRY": "container registry URI the step images are pushed to, e.g. ghcr.io/me",
    "RECSYS_MLFLOW_TRACKING_URI": "MLflow tracking server URL reachable from the cluster, e.g. https://mlflow.me",
}
OPTIONAL = {"RECSYS_KUBEFLOW_HOST": "Kubeflow Pipelines API URL (default: found through the kube context)",
            "RECSYS_KUBEFLOW_NAMESPACE": "namespace Kubeflow Pipelines is deployed in (default: kubeflow)",
            "RECSYS_STATE_ROOT": "where steps hand over files: features, Feast registry, bundles, batch "
                                 "outputs (default: <RECSYS_ARTIFACT_STORE>/recsys-state)"}
# A remote MLflow needs exactly one way in. Values may be ZenML secret references ("{{mlflow.token}}") so
# that no credential is stored in the component's configuration.
MLFLOW_AUTH = {"RECSYS_MLFLOW_TRACKING_TOKEN": "tracking_token", "RECSYS_MLFLOW_USERNAME": "tracking_username",
               "RECSYS_MLFLOW_PASSWORD": "tracking_password"}
# Steps that need more than a default pod, as ZenML ResourceSettings (requests; memory is also the limit).
# The two-tower training holds the interaction tensors and TensorFlow's threads; the feature job runs Spark
# in local mode inside its pod (spark.driver.memory in configs/features.yaml must fit under the memory).
STEP_RESOURCES = {
    "train_retrieval": {"cpu_count": 4, "memory": "8GiB"},
    "compute_features": {"cpu_count": 4, "memory": "6GiB"},
}
# Debian's default JRE (17 on bookworm, 21 on trixie; PySpark 4 needs 17+) for the Spark feature engine.
APT_PACKAGES = ["default-jre-headless"]
# The artifact store's fsspec filesystem, per flavor: what ZenML's artifact store class and recsys.storage
# import. Pinned to versions that resolve with requirements.txt (pip --dry-run, 2026-11-29). ZenML's own
# integration lists are not used (install_stack_requirements off): they are unpinned, installed before
# requirements.txt in a separate pip call (pulling kfp-kubernetes 2.17.3 and kfp 2.17 first), and the gcp
# one caps gcsfs at 2024.12 (fsspec 2024.12, older than the fsspec the runtime set resolves to).
STORE_PACKAGES = {"s3": ["s3fs==2026.9.0", "boto3==1.43.117"], "gcp": ["gcsfs==2026.8.2"],
                  "azure": ["adlfs==2026.8.0"]}
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
        T.ORCHESTRATOR: (STACK_NAME, FLAVOR_NAME, orchestrator),
        T.ARTIFACT_STORE: (STACK_NAME, ARTIFACT_STORE_FLAVORS[store.split("://", 1)[0]], {"path": store}),
        T.CONTAINER_REGISTRY: (STACK_NAME, "default", {"uri": values["RECSYS_CONTAINER_REGISTRY"]}),
        T.IMAGE_BUILDER: (STACK_NAME, "local", {}),
        T.EXPERIMENT_TRACKER: ("recsys-mlflow-remote", "mlflow", {
            "tracking_uri": values["RECSYS_MLFLOW_TRACKING_URI"],
            **{field: values[name] for name, field in MLFLOW_AUTH.items() if name in values}}),
        T.MODEL_REGISTRY: ("recsys-mlflow-remote", "mlflow", {}),
    }


def state_root(values: dict[str, str]) -> str:
    """Where steps hand over files on this stack (recsys/storage.py): RECSYS_STATE_ROOT, or beside the
    artifacts, which every pod can already reach."""
    return values.get("RECSYS_STATE_ROOT") or values["RECSYS_ARTIFACT_STORE"].rstrip("/") + "/recsys-state"


def requirement_lines(path: Path) -> list[str]:
    """The requirement specifiers of a requirements file (comments and blank lines dropped)."""
    lines = (line.split("#", 1)[0].strip() for line in Path(path).read_text().splitlines())
    return [line for line in lines if line]


def run_options(values: dict[str, str]) -> dict:
    """`Pipeline.with_options` arguments for a run on this stack (run.py adds them to the config file, so
    configs/ stay stack-neutral). Resources named for a step the pipeline lacks are ignored by ZenML.

    The image holds the code (not downloaded at run time), filtered by .dockerignore, with requirements.txt,
    the artifact store's filesystem package and Java on top of ZenML's image. The pods' environment is the
    run's `environment`: ZenML sets it on every task of the compiled pipeline (DockerSettings.environment
    would only be baked into images ZenML builds)."""
    flavor = ARTIFACT_STORE_FLAVORS[values["RECSYS_ARTIFACT_STORE"].split("://", 1)[0]]
    docker = {"requirements": requirement_lines(PROJECT_DIR / "requirements.txt") + STORE_PACKAGES[flavor],
              "install_stack_requirements": False, "apt_packages": APT_PACKAGES,
              "build_config": {"dockerignore": str(PROJECT_DIR / ".dockerignore")},
              "allow_download_from_code_repository": False, "allow_download_from_artifact_store": False}
    environment = {"TF_USE_LEGACY_KERAS": "1", STATE_ROOT_ENV: state_root(values)}
    resources = {name: {"settings": {"resources": value}} for name, value in STEP_RESOURCES.items()}
    return {"settings": {"docker": docker}, "environment": environment, "steps": resources}


def ensure_flavor() -> None:
    """Register the `recsys_kubeflow` orchestrator flavor (from this repo's source) unless it is."""
    from zenml.client import Client
    from zenml.enums import StackComponentType as T

    client = Client()
    try:
        client.get_flavor_by_name_and_type(FLAVOR_NAME, T.ORCHESTRATOR)
    except KeyError:
        client.create_flavor(source=FLAVOR_SOURCE, component_type=T.ORCHESTRATOR)


def register_kubeflow_stack() -> dict:
    """Register and activate `recsys-kubeflow` from the environment; returns `run_options` for a run."""
    from zenml.client import Client

    values = read_settings()
    ensure_flavor()
    ensure_stack(Client(), STACK_NAME, components(values))
    return run_options(values)
