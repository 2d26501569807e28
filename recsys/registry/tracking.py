"""One MLflow run per training run, open from the first training step to the registration.

The training pipeline's steps add to the same run as they finish: the data summary, the two-tower's
per-epoch curves, the ranker's per-round curve and feature importance, candidate recall, the evaluation's
metrics and figures, the gate; the register step adds the configuration, the bundle and the model
(recsys.registry.mlflow_registry), then closes it. The run is found again by a tag holding the orchestrator's
run id (`key`), so no step passes a run id to the next: an artifact would tie every step's cache to it.
Curves are metric histories (`step=` epoch or round), so MLflow draws them as lines.

Everything takes the tracking URI explicitly, like recsys.registry.mlflow_registry.
"""

from __future__ import annotations

import numbers
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from recsys.registry.mlflow_registry import _client, ensure_experiment, flatten_params, metric_key

RUN_KEY_TAG = "zenml_run_id"


def find_run(tracking_uri: str, experiment: str, key: str) -> str | None:
    """Id of the run tagged with `key`, or None."""
    client = _client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return None
    runs = client.search_runs([found.experiment_id], filter_string=f"tags.{RUN_KEY_TAG} = '{key}'", max_results=1)
    return runs[0].info.run_id if runs else None


def open_run(tracking_uri: str, experiment: str, key: str, run_name: str | None = None,
             tags: Mapping[str, object] | None = None) -> str:
    """The run tagged with `key`, created (RUNNING) on first use."""
    existing = find_run(tracking_uri, experiment, key)
    if existing is not None:
        return existing
    run = _client(tracking_uri).create_run(ensure_experiment(tracking_uri, experiment), run_name=run_name,
                                           tags={RUN_KEY_TAG: key, **{k: str(v) for k, v in (tags or {}).items()}})
    return run.info.run_id


def log_values(tracking_uri: str, run_id: str, metrics: Mapping[str, object] | None = None,
               params: Mapping[str, object] | None = None, tags: Mapping[str, object] | None = None) -> None:
    """Single-value metrics (numbers only; names made MLflow-safe, "ndcg@10" -> "ndcg_at_10"), params
    (flattened, empty and None values left out: they say nothing) and tags."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    metric_rows = [Metric(metric_key(k), float(v), now, 0) for k, v in (metrics or {}).items()
                   if isinstance(v, numbers.Real) and not isinstance(v, bool)]
    param_rows = [Param(k, v) for k, v in flatten_params(params or {}).items()]
    tag_rows = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
    _batches(tracking_uri, run_id, metric_rows, param_rows, tag_rows)


def log_curve(tracking_uri: str, run_id: str, name: str, values: Sequence[float], first_step: int = 1) -> None:
    """A metric history: values[i] at step first_step + i (an epoch, a boosting round)."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    rows = [Metric(metric_key(name), float(v), now, first_step + i) for i, v in enumerate(values)
            if isinstance(v, numbers.Real) and v == v]  # NaN (no validation data) is no point on a curve
    _batches(tracking_uri, run_id, rows, [], [])


def _batches(tracking_uri: str, run_id: str, metrics: list, params: list, tags: list) -> None:
    """Within MLflow's log_batch limits (100 params, 100 tags, 1,000 metrics per call)."""
    client = _client(tracking_uri)
    for start in range(0, max(len(params), len(tags)), 100):
        client.log_batch(run_id, params=params[start:start + 100], tags=tags[start:start + 100])
    for start in range(0, len(metrics), 800):
        client.log_batch(run_id, metrics=metrics[start:start + 800])


def log_files(tracking_uri: str, run_id: str, files: Mapping[str, bytes | str], artifact_dir: str = "") -> None:
    """Write each {name: content} (PNG bytes, HTML or CSV text) as a run artifact under `artifact_dir`."""
    client = _client(tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            path = Path(tmp) / name
            path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
            client.log_artifact(run_id, str(path), artifact_dir or None)


def log_directory(tracking_uri: str, run_id: str, directory: str | Path, artifact_path: str) -> None:
    """Every file of `directory` under `artifact_path` (e.g. the bundle under bundle/)."""
    _client(tracking_uri).log_artifacts(run_id, str(directory), artifact_path=artifact_path)


def copy_run_contents(tracking_uri: str, source_run_id: str, target_run_id: str, artifact_dir: str = "figures",
                      ) -> list[str]:
    """Metric histories the target run lacks, and the source's `artifact_dir` files, copied from another
    run (a cached step's curves and figures, from the run that computed them). Returns the metric names."""
    client = _client(tracking_uri)
    have = set(client.get_run(target_run_id).data.metrics)
    copied = [name for name in client.get_run(source_run_id).data.metrics if name not in have]
    rows = [m for name in copied for m in client.get_metric_history(source_run_id, name)]
    _batches(tracking_uri, target_run_id, rows, [], [])
    present = {Path(f.path).name for f in client.list_artifacts(target_run_id, artifact_dir)}
    with tempfile.TemporaryDirectory() as tmp:
        for item in client.list_artifacts(source_run_id, artifact_dir):
            if not item.is_dir and Path(item.path).name not in present:  # the target's own figures stay
                client.log_artifact(target_run_id, client.download_artifacts(source_run_id, item.path, tmp),
                                    artifact_dir)
    return copied


def finish_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    """Close the run (FINISHED, FAILED or KILLED)."""
    _client(tracking_uri).set_terminated(run_id, status=status)
