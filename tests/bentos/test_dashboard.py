"""The Grafana dashboard and Prometheus scrape example only name metrics the service and the stream consumer
export."""

import json
import re

import yaml
from prometheus_client import CollectorRegistry

from bentos.settings import PROJECT_ROOT
from recsys.monitoring import loop_metrics
from recsys.monitoring.metrics import ServingMetrics
from recsys.monitoring.stream_metrics import StreamMetrics

GRAFANA = PROJECT_ROOT / "deploy" / "grafana"
# BentoML's own HTTP metrics (namespace bentoml_service), as /metrics shows them.
BENTOML = {"bentoml_service_request_total", "bentoml_service_request_duration_seconds",
           "bentoml_service_request_in_progress"}


def exported_names() -> set:
    registry = CollectorRegistry()
    ServingMetrics(registry=registry)
    StreamMetrics(registry=registry)
    names = set()
    for reg in (registry, loop_registry()):
        for family in reg.collect():
            names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names | BENTOML


def loop_registry():
    """The monitoring loop's series, from a real verdict, decision and promotion."""
    from datetime import datetime, timezone

    from recsys.monitoring.verdict import Decision, DriftVerdict, Signal

    now = datetime(2025, 7, 1, tzinfo=timezone.utc)
    verdict = DriftVerdict(model_name="m", model_version="1", window_start=now, window_end=now, reference_start=now,
                           reference_end=now, n_events=1, n_users=1,
                           signals=[Signal(name="outcome_ndcg", kind="outcome", value=0.1, reference=0.12, threshold=0.2)])
    decision = Decision(retrain=False, alert=False, reason="", window_end=now)
    return loop_metrics.collect("m", verdict, decision, promoted=False)


def test_dashboard_queries_name_only_exported_metrics():
    dashboard = json.loads((GRAFANA / "recommender.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]  # a row has none
    assert len(exprs) >= 10
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\b(?:recsys|bentoml_service)_\w+", e)}
    assert used <= exported_names(), used - exported_names()
    needed = {"recsys_stage_duration_seconds", "recsys_stage_items", "recsys_fallbacks_total", "recsys_errors_total",
              "recsys_model_info", "recsys_stream_events_total", "recsys_stream_consumer_lag",
              "recsys_stream_batch_duration_seconds", "recsys_stream_dead_letters_total",
              "recsys_online_state_events_total", "recsys_online_state_reads_total",
              "recsys_online_state_event_age_seconds", "recsys_drift_signal_value", "recsys_drift_signal_reference",
              "recsys_retrain_decision", "recsys_model_promoted"}
    assert needed <= used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_scrape_example_targets_the_metrics_path():
    config = yaml.safe_load((GRAFANA / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"recsys-serving", "recsys-stream", "recsys-loop"} <= set(jobs)
    for job in jobs.values():
        assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"]
