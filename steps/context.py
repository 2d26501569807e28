"""Run-time look-ups shared by steps: the stack's MLflow URI, the running ZenML model, the run's config.

Called inside step bodies only (never at import), so importing a step touches no stack, client or network.
"""

from __future__ import annotations

from typing import Any, Optional


def mlflow_tracking_uri(override: Optional[str] = None) -> str:
    """`override` when set, else the tracking URI of the active stack's MLflow experiment tracker."""
    if override:
        return override
    from zenml.client import Client

    tracker = Client().active_stack.experiment_tracker
    if tracker is None or not hasattr(tracker, "get_tracking_uri"):
        raise RuntimeError("no MLflow tracking URI: the active stack has no MLflow experiment tracker "
                           "(`python run.py` registers recsys-local with one) and tracking_uri is not set")
    return tracker.get_tracking_uri()


def current_model():
    """The ZenML Model (version) of the running step, or None when the pipeline configures none."""
    from zenml import get_step_context

    context = get_step_context()
    return context.model if context.model_version else None


def resolve_model_name(override: Optional[str] = None) -> str:
    """`override` when set, else the name of the pipeline's ZenML model (the `model:` of the config)."""
    model = None if override else current_model()
    if not (override or model):
        raise ValueError("no model name: set the step's model_name or give the pipeline a `model:`")
    return override or model.name


def run_configuration() -> dict[str, Any]:
    """What produced this run: pipeline name and parameters, run name, and every step's parameters."""
    from zenml import get_step_context

    run = get_step_context().pipeline_run
    snapshot = run.snapshot
    return {
        "pipeline": snapshot.pipeline_configuration.name,
        "run": run.name,
        "parameters": dict(snapshot.pipeline_configuration.parameters or {}),
        "steps": {name: dict(step.config.parameters) for name, step in snapshot.step_configurations.items()},
    }
