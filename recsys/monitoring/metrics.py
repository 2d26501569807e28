"""Prometheus metric definitions of the online recommender (the service's `/metrics`).

The BentoML service (bentos/service.py) creates one `ServingMetrics` per worker process and wires
`observe_stage` to the Recommender's stage-timing hook; deploy/grafana/recommender.json charts these names.
Nothing here imports BentoML.

`prometheus_client` is imported when a `ServingMetrics` is built, never at module import: BentoML switches
prometheus_client to multiprocess mode (PROMETHEUS_MULTIPROC_DIR) in each worker after the service module is
imported, and a client imported before that would write to process memory that `/metrics` never reads.
In multiprocess mode gauges need an aggregation mode and `Info` is unsupported, so the model version is a
0/1 gauge labelled with the version ("livemax": the value of the live worker that reports the highest).
"""

from __future__ import annotations

NAMESPACE = "recsys"
# Per-stage latency: the in-process stages take tens of microseconds to a few milliseconds.
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
# Whole requests as the service handles them (parsing and serialisation included).
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
# How many items leave a stage: candidates are in the hundreds, final lists up to k = 100.
NO_ITEM_STAGES = ("filter", "rerank")  # stages that report no item count to the observer
ITEM_BUCKETS = (0, 1, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class ServingMetrics:
    """The service's metrics. Label values are small closed sets (stage, endpoint, variant, reason), never
    user or item ids, so the series count stays bounded."""

    def __init__(self, namespace: str = NAMESPACE, registry=None):
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        registry = REGISTRY if registry is None else registry
        ns = namespace
        self.stage_seconds = Histogram(
            f"{ns}_stage_duration_seconds", "Time spent in one recommender stage per request.",
            ["stage"], buckets=STAGE_BUCKETS, registry=registry)
        self.stage_items = Histogram(
            f"{ns}_stage_items", "Items (candidates) leaving one recommender stage per request.",
            ["stage"], buckets=ITEM_BUCKETS, registry=registry)
        self.request_seconds = Histogram(
            f"{ns}_request_duration_seconds", "Handler time of one API call (inside the HTTP framework).",
            ["endpoint", "variant"], buckets=REQUEST_BUCKETS, registry=registry)
        self.fallbacks = Counter(
            f"{ns}_fallbacks_total", "Requests answered (in part) by a fallback, by reason.",
            ["reason"], registry=registry)
        self.errors = Counter(
            f"{ns}_errors_total", "Requests that failed: invalid (4xx) or internal (5xx).",
            ["endpoint", "kind"], registry=registry)
        self.model_info = Gauge(
            f"{ns}_model_info", "1 for the model version each variant serves now, 0 for one it served before.",
            ["variant", "version", "source"], multiprocess_mode="livemax", registry=registry)
        self.reloads = Counter(
            f"{ns}_model_reloads_total", "Bundle (re)loads by variant and result (swapped, failed).",
            ["variant", "result"], registry=registry)
        self.feedback = Counter(
            f"{ns}_feedback_events_total", "Feedback events accepted, by sink (kafka, direct) and variant.",
            ["sink", "event_type", "variant"], registry=registry)

        self._stage_children: dict = {}
        self.ranked_lists = Gauge(
            f"{ns}_ranked_lists", "Ranked-candidate cache of the served Recommender (recsys/serving/ranked.py): "
            "entries, bytes, and since load hits, misses, fallbacks (short lists after filtering), "
            "explain_passes (a cached list recomputed to explain a deeper page), invalidated, evicted; "
            "warm_done is 1 once the background warm-up finished.",
            ["variant", "what"], multiprocess_mode="livesum", registry=registry)

    def set_ranked_lists(self, variant: str, stats: dict, warm_done: bool) -> None:
        for what in ("entries", "bytes", "hits", "misses", "fallbacks", "explain_passes", "invalidated", "evicted"):
            self.ranked_lists.labels(variant, what).set(stats.get(what, 0))
        self.ranked_lists.labels(variant, "warm_done").set(1 if warm_done else 0)

    def observe_stage(self, stage: str, seconds: float, n_items: int | None = None) -> None:
        """The Recommender's stage-timing hook: `observer(stage_name, seconds, n_items)`. Item counts are
        kept for the stages that pass items on (filter and rerank report none)."""
        children = self._stage_children  # labels() costs a locked dict lookup a call: keep the children
        timer = children.get(stage)
        if timer is None:
            timer = children[stage] = self.stage_seconds.labels(stage)
        timer.observe(seconds)
        if n_items is not None and stage not in NO_ITEM_STAGES:
            items = children.get((stage, "items"))
            if items is None:
                items = children[(stage, "items")] = self.stage_items.labels(stage)
            items.observe(n_items)

    def set_model(self, variant: str, version: str, source: str, previous: tuple[str, str] | None = None) -> None:
        """Mark `version` as what `variant` serves; the version it replaces (version, source) drops to 0."""
        if previous is not None and previous != (version, source):
            self.model_info.labels(variant, previous[0], previous[1]).set(0)
        self.model_info.labels(variant, version, source).set(1)
