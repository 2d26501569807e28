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


def registered_model_version(name: str, mlflow_version: str, limit: int = 200):
    """The ZenML model version of `name` that registered MLflow version `mlflow_version` (its `registration`
    metadata, written by register_model / promote_challenger), newest first among the last `limit`; None
    when none did (e.g. a version registered outside the pipelines)."""
    from zenml.client import Client

    for version in Client().list_model_versions(model=name, size=limit, hydrate=True,
                                                sort_by="desc:created").items:
        registration = (version.run_metadata or {}).get("registration") or {}
        if str(registration.get("mlflow_version")) == str(mlflow_version):
            return version
    return None


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


def previous_verdicts(model_name: str, limit: int = 200) -> list:
    """The drift verdicts earlier runs recorded for `model_name` (artifacts named steps.names.DRIFT_VERDICT,
    newest first, at most `limit`): the policy's memory of consecutive windows and where the last window
    ended. Unreadable versions (an older format) are skipped."""
    from zenml.client import Client

    from recsys.monitoring.verdict import DriftVerdict
    from steps.names import DRIFT_VERDICT

    found = []
    for version in Client().list_artifact_versions(name=DRIFT_VERDICT, sort_by="desc:created", size=limit).items:
        try:
            verdict = version.load()
        except Exception:  # noqa: BLE001 - a verdict from an older format is not evidence
            continue
        if isinstance(verdict, DriftVerdict) and verdict.model_name == model_name:
            found.append(verdict)
    return found
