"""Prometheus metric definitions of the stream consumer (recsys.streaming.consumer's `/metrics`).

The consumer process serves them with prometheus_client's own HTTP server (configs/stream.yaml `metrics.port`);
deploy/grafana/recommender.json charts them in its "Streaming" row. One process, one registry: no
multiprocess mode here (unlike the BentoML service, recsys.monitoring.metrics). Label values are small closed
sets (outcome, stage, field, partition number), never user or item ids.
"""

from __future__ import annotations

NAMESPACE = "recsys_stream"
# A batch is at most ~1 s of events (configs/stream.yaml), its stages milliseconds to a second.
BATCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 10, 100, 500, 1000, 2000, 5000, 10000, 20000, 50000)
# Event time -> applied: sub-second when caught up, minutes to hours when replaying a backlog.
AGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
OUTCOMES = ("applied", "duplicate", "outdated", "invalid")


class StreamMetrics:
    def __init__(self, namespace: str = NAMESPACE, registry=None):
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        registry = REGISTRY if registry is None else registry
        ns = namespace
        self.events = Counter(
            f"{ns}_events_total", "Messages consumed by outcome: applied (changed a user's row), duplicate "
            "(event_id already applied: a dedup hit), outdated (older than a full row), invalid (to the DLQ).",
            ["outcome"], registry=registry)
        self.dead_letters = Counter(
            f"{ns}_dead_letters_total", "Messages sent to <topic>.dlq, by the event field at fault ('' = the "
            "whole message).", ["field"], registry=registry)
        self.batch_seconds = Histogram(
            f"{ns}_batch_duration_seconds", "Time to apply one batch's effects (parse, read, merge, writes).",
            buckets=BATCH_BUCKETS, registry=registry)
        self.stage_seconds = Histogram(
            f"{ns}_stage_duration_seconds", "Time per batch in one stage (parse, read, merge, write_events, "
            "write_counters, write_vector) or per roll (derived, archive, dlq, commit).", ["stage"],
            buckets=BATCH_BUCKETS, registry=registry)
        self.batch_records = Histogram(
            f"{ns}_batch_records", "Messages per applied batch.", buckets=SIZE_BUCKETS, registry=registry)
        self.rows_written = Counter(
            f"{ns}_rows_written_total", "User rows written to the online store (one per user per batch).",
            registry=registry)
        self.event_age = Histogram(
            f"{ns}_event_age_seconds", "Event time to applied (includes the producer's delay).",
            buckets=AGE_BUCKETS, registry=registry)
        self.lag = Gauge(
            f"{ns}_consumer_lag", "Messages behind the partition's end (high watermark - position).",
            ["partition"], registry=registry)
        self.commits = Counter(
            f"{ns}_commits_total", "Offset commits by result (ok, failed).", ["result"], registry=registry)
        self.last_commit = Gauge(
            f"{ns}_last_commit_timestamp_seconds", "Unix time of the last successful offset commit.",
            registry=registry)
        self.errors = Counter(
            f"{ns}_errors_total", "Failures the consumer recovered from by re-reading since the last commit "
            "(kind: apply, commit).", ["kind"], registry=registry)
        self.rebalances = Counter(
            f"{ns}_rebalances_total", "Partition revocations and assignments.", ["kind"], registry=registry)
        self.model_info = Gauge(
            f"{ns}_model_info", "1 for the model bundle version whose user tower computes live vectors.",
            ["version"], registry=registry)
        self._partitions: set[int] = set()

    def observe_batch(self, result, seconds: float, now: float) -> None:
        """A recsys.streaming.apply.BatchResult applied in `seconds` at unix time `now`."""
        self.batch_seconds.observe(seconds)
        self.batch_records.observe(result.records)
        for stage, spent in result.seconds.items():
            self.stage_seconds.labels(stage).observe(spent)
        invalid = len(result.dead_letters)
        for outcome, n in zip(OUTCOMES, (result.applied, result.duplicates, result.outdated, invalid)):
            if n:
                self.events.labels(outcome).inc(n)
        for letter in result.dead_letters:
            self.dead_letters.labels(letter.get("field") or "").inc()
        self.rows_written.inc(result.users)
        for seconds_ in result.event_seconds[-1000:]:  # a sample is enough for the histogram's quantiles
            self.event_age.observe(max(0.0, now - seconds_))

    def set_lag(self, lags: dict[int, int]) -> None:
        for gone in self._partitions - set(lags):
            self.lag.remove(str(gone))
        for partition, lag in lags.items():
            self.lag.labels(str(partition)).set(lag)
        self._partitions = set(lags)

    def set_model(self, version: str | None, previous: str | None = None) -> None:
        if previous and previous != version:
            self.model_info.labels(previous).set(0)
        if version:
            self.model_info.labels(version).set(1)
