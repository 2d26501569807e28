"""The end of a run's output: the figures that matter and where to look next.

Reads the run's own artifacts back from ZenML (small ones: the metrics table, the registration, verdicts),
so it reports what the run recorded, on any stack.
"""

from __future__ import annotations

from pathlib import Path

VERDICTS = (("check_drift", "drift_verdict"), ("decide_retrain", "retrain_decision"),
            ("promote_challenger", "promotion"), ("rollback_model", "rollback"),
            ("record_deployment", "deployment"), ("render_manifests", "manifests"),
            ("containerize_bento", "container_image"), ("start_canary", "canary"),
            ("read_canary", "canary_decision"), ("conclude_canary", "canary_result"))
# step -> (artifact, what it shows): the pages a person opens in the dashboard
PAGES = {"split_data": ("data_summary", "the data"), "evaluate": ("evaluation_report", "the evaluation"),
         "quality_gate": ("gate_report", "the gate"), "check_drift": ("drift_report", "the drift check")}


def _output(run, step: str, name: str):
    return run.steps[step].regular_outputs[name].load() if step in run.steps else None


def _short(path, root: Path) -> str:
    """A path relative to the project when it is inside it (shorter lines)."""
    try:
        return str(Path(path).resolve().relative_to(root))
    except (ValueError, TypeError):
        return str(path)


def quality_line(table) -> str:
    """'recommender ndcg@10 0.128 (best baseline two_tower_only 0.115, popularity 0.067), recall@10 ...'."""
    model, others = table.index[0], list(table.index[1:])
    k = next((c.split("@")[1] for c in table.columns if c.startswith("ndcg@")), "10")
    ndcg = f"ndcg@{k}"
    parts = [f"{model} {ndcg} {table.loc[model, ndcg]:.3f}"]
    if others:
        best = table.loc[others, ndcg].idxmax()
        parts[0] += f" (best baseline {best} {table.loc[best, ndcg]:.3f}"
        parts[0] += f", popularity {table.loc['popularity', ndcg]:.3f})" if "popularity" in others and best != \
            "popularity" else ")"
    parts += [f"{m}@{k} {table.loc[model, f'{m}@{k}']:.3f}" for m in ("recall", "coverage")
              if f"{m}@{k}" in table.columns]
    return ", ".join(parts)


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
        lines.append(f"registered {registration['mlflow_model']} version {registration['mlflow_version']} (alias "
                     f"{registration['alias']}), bundle {_short(registration['bundle'], root)}"
                     if registration["registered"] else "quality gate failed: nothing registered (see gate_report)")
    store = _output(run, "materialize_features", "feature_materialization")
    if store is not None:
        lines.append(f"features: {_short(store['features_dir'], root)} -> Feast online store up to "
                     f"{store['materialized']['end'][:10]}; cd {store['repo_path']} && feast feature-views list")
    for step, artifact in VERDICTS:
        value = _output(run, step, artifact)
        if value is not None:
            lines.append(value.summary() if hasattr(value, "summary") else str(
                value.get("summary", value) if isinstance(value, dict) else getattr(value, "reason", value)))
    if "batch_predict" in run.steps:
        lines.append(f"recommendations: {_short(root / run.steps['batch_predict'].config.parameters['output_path'], root)}")
    pages = [f"{step} -> {artifact}" for step, (artifact, _) in PAGES.items() if step in run.steps]
    lines.append(f"ZenML dashboard: zenml login --local, then Runs -> {run.name}"
                 + (f": {', '.join(pages)}; the run's Metadata tab" if pages else ""))
    tracker = client.active_stack.experiment_tracker
    if tracker is not None and hasattr(tracker, "get_tracking_uri"):
        run_id = (registration or {}).get("mlflow_run_id")
        lines.append(f"MLflow UI: mlflow ui --backend-store-uri {tracker.get_tracking_uri()}"
                     + (f", then run {run_id} (curves, figures/, the registered model)" if run_id else ""))
    return lines
