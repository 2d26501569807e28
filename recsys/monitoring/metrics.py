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
# From an event's time to its application in a serving process that did not take it (store row, event log):
# the consumer's batch and the row read at the user's next request; seconds to minutes when backed up.
AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
STATE_EVENTS = ("applied", "duplicates", "in_bundle")  # recsys.serving.state.OnlineState.counts
STATE_READS = {"store_reads": "reads", "store_errors": "errors", "store_skipped": "skipped",
               "log_bad_lines": "bad_log_lines"}
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

        # The online state (recsys/serving/state.py). Its read latency is the "state" stage above.
        self.state_events = Counter(
            f"{ns}_online_state_events_total", "Events the served version's online state took from the store rows "
            "(Kafka) or the shared event log: applied, duplicates (an event id it had already), in_bundle (an "
            "event the loaded bundle holds already).", ["variant", "what"], registry=registry)
        self.state_reads = Counter(
            f"{ns}_online_state_reads_total", "Reads of the users' real-time rows: reads, errors (the store "
            "failed: served from the state in memory), skipped (paused after a failure), bad_log_lines.",
            ["variant", "what"], registry=registry)
        self.state_event_age = Histogram(
            f"{ns}_online_state_event_age_seconds", "From an event's time to its application in a serving "
            "process that did not take it (store row or event log): the freshness of the shared state.",
            ["variant"], buckets=AGE_BUCKETS, registry=registry)
        self._state_seen: dict = {}  # (variant, id(state)) -> the counts already exported

    def set_online_state(self, variant: str, state) -> None:
        """Export what `state` (an OnlineState) counted since the last call; a new version starts afresh."""
        status = state.status()
        key = (variant, id(state))
        seen = self._state_seen.get(key)
        if seen is None:
            self._state_seen = {k: v for k, v in self._state_seen.items() if k[0] != variant}
            seen = self._state_seen[key] = {}
        for name in STATE_EVENTS:
            self._add(self.state_events.labels(variant, name), seen, name, status.get(name, 0))
        for name, what in STATE_READS.items():
            self._add(self.state_reads.labels(variant, what), seen, name, status.get(name, 0))
        ages = state.ages
        if ages:
            child = self.state_event_age.labels(variant)
            while ages:
                child.observe(max(ages.popleft(), 0.0))

    @staticmethod
    def _add(counter, seen: dict, name: str, total: float) -> None:
        delta = total - seen.get(name, 0)
        if delta > 0:
            counter.inc(delta)
            seen[name] = total

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
