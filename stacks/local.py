"""The default stack, `recsys-local`: everything on this machine, under the project's data/ directory.

- orchestrator `recsys-local` (local flavor: steps run one after another in the calling process),
- artifact store `recsys-local` at `<data>/zenml_artifacts`,
- experiment tracker and model registry `recsys-mlflow` (ZenML's MLflow flavors) on
  `sqlite:///<data>/mlflow/mlflow.db`; browse it with `mlflow ui --backend-store-uri <that uri>`.

The MLflow flavors work without `zenml integration install mlflow`: ZenML registers every integration's
flavors and only imports `mlflow` when the component is used, and mlflow 3.17 is in requirements.txt. (The
integration reports itself "not installed" because it also lists python-rapidjson; that only skips its
optional materializers and deployer services, which this project does not use.) The steps take the tracking
URI from this component at run time (steps/context.py) and call recsys.registry with it.

`register_local_stack` is idempotent: it creates what is missing, re-points components whose settings
differ (e.g. the project moved), and activates the stack.
"""

from __future__ import annotations

from pathlib import Path

STACK_NAME = "recsys-local"
MLFLOW_COMPONENT = "recsys-mlflow"


def mlflow_tracking_uri(data_dir: Path) -> str:
    """sqlite tracking (and registry) URI of the local MLflow store under `data_dir`."""
    return f"sqlite:///{(Path(data_dir) / 'mlflow' / 'mlflow.db').resolve()}"


def _components(data_dir: Path) -> dict:
    from zenml.enums import StackComponentType as T

    return {
        T.ORCHESTRATOR: (STACK_NAME, "local", {}),
        T.ARTIFACT_STORE: (STACK_NAME, "local", {"path": str((data_dir / "zenml_artifacts").resolve())}),
        T.EXPERIMENT_TRACKER: (MLFLOW_COMPONENT, "mlflow", {"tracking_uri": mlflow_tracking_uri(data_dir)}),
        T.MODEL_REGISTRY: (MLFLOW_COMPONENT, "mlflow", {}),
    }


def ensure_component(client, component_type, name: str, flavor: str, config: dict) -> None:
    """Create the component, or update its configuration where it differs from `config`."""
    try:
        existing = client.get_stack_component(component_type, name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack_component(name, flavor, component_type, config)
        return
    if existing.flavor_name != flavor:
        raise RuntimeError(f"{component_type.value} {name!r} exists with flavor {existing.flavor_name!r}, "
                           f"not {flavor!r}; rename or delete it (zenml {component_type.value} delete {name})")
    if any(existing.configuration.get(key) != value for key, value in config.items()):
        client.update_stack_component(name, component_type, configuration=config)


def ensure_stack(client, stack_name: str, components: dict) -> str:
    """Register `stack_name` with the given {type: (name, flavor, config)} components and activate it."""
    for component_type, (name, flavor, config) in components.items():
        ensure_component(client, component_type, name, flavor, config)
    wanted = {component_type: name for component_type, (name, _, _) in components.items()}
    try:
        stack = client.get_stack(stack_name, allow_name_prefix_match=False)
    except KeyError:
        client.create_stack(stack_name, components=wanted)
    else:
        current = {t: [c.name for c in cs] for t, cs in stack.components.items()}
        if any(current.get(t) != [name] for t, name in wanted.items()):
            client.update_stack(stack_name, component_updates=wanted)
    if client.active_stack_model.name != stack_name:
        client.activate_stack(stack_name)
    return stack_name


def register_local_stack(data_dir: Path) -> str:
    """Register and activate `recsys-local` with its state under `data_dir`; returns the stack name."""
    from zenml.client import Client

    data_dir = Path(data_dir)
    (data_dir / "mlflow").mkdir(parents=True, exist_ok=True)
    return ensure_stack(Client(), STACK_NAME, _components(data_dir))
