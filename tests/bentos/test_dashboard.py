"""The Grafana dashboard and Prometheus scrape example only name metrics the service and the stream consumer
export."""

import json
import re

import yaml
from prometheus_client import CollectorRegistry

from bentos.settings import PROJECT_ROOT
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
    for family in registry.collect():
        names.add(family.name + ("_total" if family.type == "counter" else ""))
    return names | BENTOML


def test_dashboard_queries_name_only_exported_metrics():
    dashboard = json.loads((GRAFANA / "recommender.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for e in exprs for m in re.findall(r"\b(?:recsys|bentoml_service)_\w+", e)}
    assert used <= exported_names(), used - exported_names()
    needed = {"recsys_stage_duration_seconds", "recsys_stage_items", "recsys_fallbacks_total", "recsys_errors_total",
              "recsys_model_info", "recsys_stream_events_total", "recsys_stream_consumer_lag",
              "recsys_stream_batch_duration_seconds", "recsys_stream_dead_letters_total"}
    assert needed <= used
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))


def test_scrape_example_targets_the_metrics_path():
    config = yaml.safe_load((GRAFANA / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {"recsys-serving", "recsys-stream"} <= set(jobs)
    for job in jobs.values():
        assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"]
