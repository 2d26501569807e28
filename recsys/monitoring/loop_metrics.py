"""Prometheus figures of the monitoring loop: each drift check's signals and the retrain decision.

Where this sits: the drift and retrain pipelines are batch jobs, not servers, so their figures are written
where Prometheus collects batch jobs' metrics: a text file in the node_exporter textfile-collector format
(always, `data/monitoring/recsys_loop.prom` by default) and, when a Pushgateway is configured
(`PROMETHEUS_PUSHGATEWAY` or the step's `pushgateway`), pushed there. deploy/grafana/recommender.json
charts them in its "Drift and retraining" row; deploy/grafana/prometheus.yml scrapes the Pushgateway.

Series: recsys_drift_signal_value{signal,kind}, recsys_drift_signal_threshold{signal,kind},
recsys_drift_signal_reference{signal,kind},
recsys_drift_signal_fired{signal,kind}, recsys_drift_window_end_timestamp_seconds, recsys_drift_window_events,
recsys_retrain_decision{reason} (1: retrain), recsys_retrain_consecutive_windows, recsys_model_promoted
(1: the last challenger was promoted).
"""

from __future__ import annotations

import os
from pathlib import Path

PUSHGATEWAY_ENV = "PROMETHEUS_PUSHGATEWAY"


def publish(model_name: str, verdict=None, decision=None, promoted: bool | None = None,
            textfile: str | Path | None = None, pushgateway: str | None = None, job: str = "recsys-loop") -> Path | None:
    """Write the figures to `textfile` (merged with what earlier calls wrote there) and push them when a
    gateway is configured. Returns the text file written."""
    from prometheus_client import push_to_gateway, write_to_textfile

    registry = collect(model_name, verdict, decision, promoted)
    path = None
    if textfile:
        path = Path(textfile)
        path.parent.mkdir(parents=True, exist_ok=True)
        fresh = path.with_suffix(".tmp")
        write_to_textfile(str(fresh), registry)
        kept = _other_series(path, fresh) if path.exists() else ""
        fresh.write_text(fresh.read_text() + kept)
        os.replace(fresh, path)
    gateway = pushgateway or os.environ.get(PUSHGATEWAY_ENV)
    if gateway:
        push_to_gateway(gateway, job=job, registry=registry)
    return path


def collect(model_name: str, verdict=None, decision=None, promoted: bool | None = None):
    """A prometheus_client registry holding the series of a verdict, a decision and a promotion."""
    from prometheus_client import CollectorRegistry, Gauge

    registry = CollectorRegistry()
    model = {"model": model_name}
    if verdict is not None and not verdict.skipped:
        labels = ["model", "signal", "kind"]
        value = Gauge("recsys_drift_signal_value", "Figure measured by the last drift check.", labels, registry=registry)
        bound = Gauge("recsys_drift_signal_threshold", "Its configured threshold.", labels, registry=registry)
        fired = Gauge("recsys_drift_signal_fired", "1 when the signal fired.", labels, registry=registry)
        reference = Gauge("recsys_drift_signal_reference", "What it is compared against (e.g. NDCG@10 at "
                          "registration).", labels, registry=registry)
        for s in verdict.signals:
            key = dict(model, signal=s.name, kind=s.kind)
            if s.value is not None:
                value.labels(**key).set(s.value)
            if s.reference is not None:
                reference.labels(**key).set(s.reference)
            bound.labels(**key).set(s.threshold)
            fired.labels(**key).set(float(s.fired))
        Gauge("recsys_drift_window_end_timestamp_seconds", "End of the last window checked.", ["model"],
              registry=registry).labels(**model).set(verdict.window_end.timestamp())
        Gauge("recsys_drift_window_events", "Events in the last window checked.", ["model"],
              registry=registry).labels(**model).set(verdict.n_events)
    if decision is not None:
        Gauge("recsys_retrain_decision", "1 when the last decision was to retrain.", ["model"],
              registry=registry).labels(**model).set(float(decision.retrain))
        Gauge("recsys_retrain_consecutive_windows", "Windows in a row meeting the retrain rule.", ["model"],
              registry=registry).labels(**model).set(decision.consecutive)
    if promoted is not None:
        Gauge("recsys_model_promoted", "1 when the last challenger was promoted.", ["model"],
              registry=registry).labels(**model).set(float(promoted))
    return registry


def _other_series(old: Path, new: Path) -> str:
    """Lines of `old` for metric families `new` does not write (a decision keeps the last verdict's)."""
    written = {line.split()[2] for line in new.read_text().splitlines() if line.startswith("# HELP")}
    out, keep = [], True
    for line in old.read_text().splitlines():
        if line.startswith("# HELP"):
            keep = line.split()[2] not in written
        if keep:
            out.append(line)
    return "\n".join(out) + ("\n" if out else "")
