"""What training steps record for a person to look at: the run's MLflow run and ZenML metadata.

`training_run()` is the MLflow run of the running pipeline run (recsys.registry.tracking: opened by the first
step that logs, found again by the pipeline run's id, closed by register_model; `mark_failed` closes it as
FAILED when a step fails). `record()` logs a step's figures to it and its key figures as ZenML metadata of
the step and of the run, so they show on the run's page without the paid Models page. Outside a pipeline
run (a step called directly, e.g. in a unit test) or on a stack without an MLflow tracker nothing is logged.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, NamedTuple, Optional

logger = logging.getLogger(__name__)


class TrackingRun(NamedTuple):
    uri: str
    run_id: str
    experiment: str


def _context():
    from zenml import get_step_context

    try:
        return get_step_context()
    except RuntimeError:  # not inside a running step
        return None


def training_run(tracking_uri: Optional[str] = None, experiment: Optional[str] = None) -> Optional[TrackingRun]:
    """The MLflow run of this pipeline run (experiment: the ZenML model's name, as the registry's), opened
    on first use; None outside a pipeline run or without a tracker."""
    from recsys.registry.tracking import open_run
    from steps.context import mlflow_tracking_uri

    context = _context()
    if context is None:
        return None
    try:
        uri = mlflow_tracking_uri(tracking_uri)
    except RuntimeError:
        return None
    run = context.pipeline_run
    name = experiment or (context.model.name if context.model_version else run.snapshot.pipeline_configuration.name)
    tags = {"zenml_pipeline": run.snapshot.pipeline_configuration.name, "zenml_run": run.name}
    return TrackingRun(uri, open_run(uri, name, str(run.id), run_name=run.name, tags=tags), name)


def record(metrics: Optional[Mapping[str, Any]] = None, figures: Optional[Mapping[str, Any]] = None,
           files: Optional[Mapping[str, Any]] = None, params: Optional[Mapping[str, Any]] = None,
           curves: Optional[Mapping[str, Any]] = None, step_metadata: Optional[Mapping[str, Any]] = None,
           run_metadata: Optional[Mapping[str, Any]] = None) -> None:
    """Log to the training run (metrics, params, curves {name: per-step values}, matplotlib `figures` as
    figures/<name>.png, `files` {name: text or bytes}) and as ZenML metadata: `step_metadata` (default: the
    metrics) on the step, `run_metadata` (the few figures that matter) on the pipeline run."""
    from recsys.evaluation.figures import png
    from recsys.registry.tracking import log_curve, log_files, log_values

    context = _context()
    if context is None:
        return
    from zenml import log_metadata

    if step_metadata or metrics:
        log_metadata(metadata=_plain(step_metadata or metrics))
    if run_metadata:
        log_metadata(metadata=_plain(run_metadata), run_id_name_or_prefix=context.pipeline_run.id)
    run = training_run()
    if run is None:
        return
    log_values(run.uri, run.run_id, metrics, params)
    for name, values in (curves or {}).items():
        log_curve(run.uri, run.run_id, name, values)
    if figures:
        log_files(run.uri, run.run_id, {f"{name}.png": png(fig) for name, fig in figures.items()}, "figures")
    if files:
        log_files(run.uri, run.run_id, dict(files))


def _plain(value):
    """Metadata ZenML stores as JSON: numpy numbers to Python ones, NaN to None."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def carry_over_cached(run: TrackingRun) -> None:
    """Steps this pipeline run took from the cache logged nothing now: copy their curves and figures from
    the MLflow run of the pipeline run that computed them, so every training run's page is complete."""
    from zenml.client import Client

    from recsys.registry.tracking import copy_run_contents, find_run

    context, client = _context(), Client()
    if context is None:
        return
    sources = {client.get_run_step(step.original_step_run_id).pipeline_run_id
               for step in context.pipeline_run.steps.values()
               if step.status.value == "cached" and step.original_step_run_id}
    for pipeline_run_id in sources - {context.pipeline_run.id}:
        source = find_run(run.uri, run.experiment, str(pipeline_run_id))
        if source and source != run.run_id:
            copied = copy_run_contents(run.uri, source, run.run_id)
            logger.info("curves and figures of cached steps copied from MLflow run %s (%d metrics)", source,
                        len(copied))


def mark_failed(exception: BaseException) -> None:
    """Pipeline failure hook: close this run's MLflow run as FAILED (when one was opened)."""
    from recsys.registry.tracking import find_run, finish_run
    from steps.context import mlflow_tracking_uri

    context = _context()
    if context is None:
        return
    try:
        uri = mlflow_tracking_uri()
        run = context.pipeline_run
        name = context.model.name if context.model_version else run.snapshot.pipeline_configuration.name
        run_id = find_run(uri, name, str(run.id))
        if run_id:
            finish_run(uri, run_id, "FAILED")
    except Exception as error:  # noqa: BLE001 - a hook must not hide the step's own failure
        logger.warning("could not mark the MLflow run failed: %s", error)
