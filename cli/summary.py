"""The end of a run's output: the figures that matter and where to look next.

Reads the run's own artifacts back from ZenML (small ones: the metrics table, the registration, verdicts),
so it reports what the run recorded, on any stack.
"""

from __future__ import annotations

from pathlib import Path

HEADLINE = ("ndcg@10", "recall@10", "coverage@10")
VERDICTS = (("check_drift", "drift_verdict"), ("decide_retrain", "retrain_decision"),
            ("promote_challenger", "promotion"), ("rollback_model", "rollback"))


def _output(run, step: str, name: str):
    return run.steps[step].regular_outputs[name].load() if step in run.steps else None


def quality_line(table) -> str:
    """'NDCG@10 0.128 (popularity 0.068, item_item_only 0.107, ...), recall@10 ..., coverage@10 ...'."""
    model, others = table.index[0], table.index[1:]
    parts = []
    for metric in (m for m in HEADLINE if m in table.columns):
        baselines = ", ".join(f"{o} {table.loc[o, metric]:.3f}" for o in others)
        parts.append(f"{metric} {table.loc[model, metric]:.3f}" + (f" (vs {baselines})" if baselines else ""))
    return f"{model}: " + "; ".join(parts)


def where_to_look(run, root: Path) -> list[str]:
    """Lines to print after a finished run."""
    from zenml.client import Client

    client = Client()
    run = client.get_pipeline_run(run.id)
    seconds = (run.end_time - run.start_time).total_seconds() if run.end_time and run.start_time else None
    lines = [f"\nrun {run.name}: {run.status.value}" + (f" in {seconds:.0f} s" if seconds else "")]
    table = _output(run, "evaluate", "evaluation_metrics")
    if table is not None:
        lines.append(quality_line(table))
    registration = _output(run, "register_model", "registration")
    if registration is not None:
        lines.append(f"registered {registration['mlflow_model']} version {registration['mlflow_version']} "
                     f"(alias {registration['alias']}), bundle {registration['bundle']}" if registration["registered"]
                     else "quality gate failed: nothing registered (the quality_gate step's gate_report says why)")
    store = _output(run, "materialize_features", "feature_materialization")
    if store is not None:
        lines.append(f"features: {store['features_dir']} -> Feast online store ({store['fs_yaml']}) up to "
                     f"{store['materialized']['end']}; cd {store['repo_path']} && feast feature-views list")
    for step, artifact in VERDICTS:
        value = _output(run, step, artifact)
        if value is not None:
            lines.append(value.summary() if hasattr(value, "summary") else str(getattr(value, "reason", value)))
    if "batch_predict" in run.steps:
        output = run.steps["batch_predict"].config.parameters["output_path"]
        lines.append(f"recommendations: {(root / output).resolve()}")
    lines.append("where to look:")
    if "evaluate" in run.steps:
        lines.append("  the evaluate step's evaluation_report (metrics vs baselines, segments, samples) and the "
                     "run's metadata: ZenML dashboard")
    if "check_drift" in run.steps:
        lines.append("  the check_drift step's drift_report: ZenML dashboard")
    lines.append("  ZenML dashboard:   zenml login --local   (then Runs -> " + run.name + ")")
    tracker = client.active_stack.experiment_tracker
    if tracker is not None and hasattr(tracker, "get_tracking_uri"):
        run_id = (registration or {}).get("mlflow_run_id")
        lines.append(f"  MLflow UI:         mlflow ui --backend-store-uri {tracker.get_tracking_uri()}"
                     + (f"   (run {run_id})" if run_id else ""))
    return lines
