"""ZenML stacks of this project: where pipelines run and where their artifacts and MLflow runs go.

`local` (the default: local orchestrator, local artifact store, MLflow tracker and registry on sqlite) and
`kubeflow` (Kubeflow orchestrator, remote artifact store, container registry, remote MLflow). `activate`
is what run.py calls; registration is idempotent and cheap when nothing changed. See stacks/README.md.
"""

from __future__ import annotations

from pathlib import Path

STACKS = ("local", "kubeflow")


def ensure_repository(root: Path) -> None:
    """Initialise a ZenML repository (`.zen/`) in `root` unless there is one; it makes `root` the source
    root, so steps resolve as `steps.<stage>.<name>` wherever the command is started from."""
    from zenml.client import Client

    if Client.find_repository(root) != root.resolve():
        Client.initialize(root)


def activate(stack: str, root: Path) -> dict:
    """Register (if needed) and activate the named stack for the project at `root`. Returns the
    `Pipeline.with_options` arguments runs on it need besides the config file (image build, pod environment,
    step resources), so the configs/ files stay stack-neutral."""
    ensure_repository(root)
    if stack == "local":
        from stacks.local import register_local_stack

        register_local_stack(root / "data")
        return {}
    if stack == "kubeflow":
        from stacks.kubeflow import register_kubeflow_stack

        return register_kubeflow_stack()
    raise ValueError(f"unknown stack {stack!r}; choose one of {STACKS}")
