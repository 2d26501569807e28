"""recsys.monitoring.metrics: the series the dashboard reads, on a private registry."""

from prometheus_client import CollectorRegistry

from recsys.monitoring.metrics import ServingMetrics


def test_stage_hook_and_model_info():
    registry = CollectorRegistry()
    m = ServingMetrics(registry=registry)
    m.observe_stage("rank", 0.002, 150)
    m.observe_stage("rank", 0.020, 50)
    m.observe_stage("explain", 0.0003, None)
    value = registry.get_sample_value
    assert value("recsys_stage_duration_seconds_count", {"stage": "rank"}) == 2
    assert value("recsys_stage_duration_seconds_sum", {"stage": "rank"}) == 0.022
    assert value("recsys_stage_duration_seconds_bucket", {"stage": "rank", "le": "0.0025"}) == 1
    assert value("recsys_stage_items_sum", {"stage": "rank"}) == 200
    assert value("recsys_stage_items_bucket", {"stage": "rank", "le": "100.0"}) == 1
    assert value("recsys_stage_items_count", {"stage": "explain"}) is None  # no count given, none observed
    m.set_model("control", "v1", "m/1")
    m.set_model("control", "v2", "m/2", previous=("v1", "m/1"))
    assert value("recsys_model_info", {"variant": "control", "version": "v2", "source": "m/2"}) == 1
    assert value("recsys_model_info", {"variant": "control", "version": "v1", "source": "m/1"}) == 0
