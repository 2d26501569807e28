"""The stream consumer: events from Kafka into the online state, the archive and the dead-letter topic.

    python -m recsys.streaming.consumer [--config configs/stream.yaml] [--create-topics]

A long-running process (not a ZenML run); several of them with the same group id split the topic's
partitions. At-least-once, idempotent effects (recsys.streaming.apply):

- offsets are committed by hand (`enable_auto_commit=False`), the next offset of what is done, and only once
  everything before it is durable: the online rows are written per batch, the archive per roll (every
  `archive.roll_seconds` / `roll_events`), the dead letters flushed; the commit follows the roll. A crash
  re-reads at most one roll, whose effects are idempotent by event_id;
- batches are bounded by count and time (`consumer.max_batch_events`, `max_batch_seconds`) and applied as
  soon as the consumer has caught up with the partitions' ends, so a poll loop stays far below
  `max_poll_interval_ms`, and an event is applied within about a poll under light load;
- on a partition revocation (a rebalance) the consumer applies what it polled, rolls and commits before
  giving the partitions up; on an assignment it drops its in-memory rows and removes the archive files of an
  uncommitted attempt of the partitions it takes over (recsys.streaming.archive);
- a failed write or commit (online store or broker down) re-reads from the last commit after
  `consumer.retry_seconds`;
- SIGTERM / SIGINT: finish the batch, roll, commit, leave the group, exit 0.

Prometheus metrics (recsys.monitoring.stream_metrics) on `metrics.port`; a summary line is logged every
10 s and at exit.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
import time

from recsys.streaming.apply import BatchApplier, Record
from recsys.streaming.archive import EventArchive
from recsys.streaming.config import StreamConfig, load_config
from recsys.streaming.effects import LiveVectors, bundle_path
from recsys.streaming.state import OnlineEventStore

log = logging.getLogger("recsys.streaming.consumer")


class StreamConsumer:
    def __init__(self, config: StreamConfig, metrics=None, store: OnlineEventStore | None = None):
        self.config, self.metrics = config, metrics
        state = config.state
        self.store = store or OnlineEventStore(state.repo_path, state.fs_yaml, ordered_writes=True)
        self.archive = EventArchive(config.archive.root, config.topic, config.archive.fsync) \
            if config.archive.root else None
        self.applier = BatchApplier(self.store, config.topic, self.archive, None, state.max_events,
                                    state.counters, state.cache_users)
        self.stop = threading.Event()
        self.totals = {"records": 0, "applied": 0, "duplicates": 0, "outdated": 0, "invalid": 0, "rows": 0,
                       "batches": 0, "commits": 0}
        self.consumer = self.dlq = None
        self._pending: list[Record] = []  # polled, not applied yet
        self._next: dict = {}  # TopicPartition -> offset after the last applied record
        self._committed: dict = {}  # TopicPartition -> offset committed (or the start of our reading)
        self._roll_started = time.monotonic()
        self._uncommitted = False  # applied since the last commit
        self._taken_over: set = set()  # assigned partitions whose start is not known yet
        self._model_key, self._model_checked = None, float("-inf")

    # ---- the loop ----
    def run(self, max_seconds: float | None = None) -> dict:
        from kafka import KafkaConsumer, KafkaProducer

        c, k = self.config.consumer, self.config.kafka
        self.consumer = KafkaConsumer(
            **k.client_config(), group_id=c.group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=c.max_poll_records, max_poll_interval_ms=c.max_poll_interval_ms,
            session_timeout_ms=c.session_timeout_ms, heartbeat_interval_ms=c.heartbeat_interval_ms,
            fetch_max_wait_ms=c.fetch_max_wait_ms)
        self.dlq = KafkaProducer(**k.client_config(), acks="all", retries=5, linger_ms=5)
        self.consumer.subscribe([self.config.topic], listener=_Listener(self))
        deadline = time.monotonic() + max_seconds if max_seconds else None
        last_report, retry = time.monotonic(), self.config.consumer.retry_seconds
        log.info("consuming %s as group %s from %s", self.config.topic, c.group_id, k.bootstrap_servers)
        try:
            while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
                self._maybe_reload_model()
                try:
                    self._collect()
                    self._apply()
                    if self._roll_due():
                        self._roll_and_commit()
                except Exception as error:  # noqa: BLE001 - any failure: re-read from the last commit
                    self._recover(error)
                    self.stop.wait(retry)
                self._report_lag()
                if time.monotonic() - last_report >= 10:
                    log.info("totals %s", json.dumps(self.totals))
                    last_report = time.monotonic()
            self._apply()
            self._roll_and_commit()
        finally:
            self.consumer.close(autocommit=False)
            self.dlq.close(timeout=10)
        log.info("stopped; totals %s", json.dumps(self.totals))
        return self.totals

    def _collect(self) -> None:
        """Poll until the batch is full, old enough, or the consumer has caught up (or nothing came)."""
        c = self.config.consumer
        started = time.monotonic()
        while not self.stop.is_set():
            room = c.max_batch_events - len(self._pending)
            left_ms = max(0, int((c.max_batch_seconds - (time.monotonic() - started)) * 1000))
            polled = self.consumer.poll(timeout_ms=min(left_ms, 200), max_records=min(room, c.max_poll_records))
            if self._taken_over:
                self._take_over()
            for tp, messages in polled.items():
                self._pending += [Record(tp.partition, m.offset, m.value, m.key, m.timestamp) for m in messages]
                self._next[tp] = messages[-1].offset + 1
            if not polled or len(self._pending) >= c.max_batch_events or not left_ms or self._caught_up():
                return

    def _caught_up(self) -> bool:
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None and high > self._next.get(tp, self._committed.get(tp, high)):
                return False
        return True

    def _apply(self) -> None:
        if not self._pending:
            return
        batch, started = self._pending, time.perf_counter()
        self._pending = []
        result = self.applier.apply(batch)
        for letter in result.dead_letters:
            self.dlq.send(self.config.dlq, key=(letter["key"] or "").encode() or None,
                          value=json.dumps(letter).encode())
        t = self.totals
        t["records"] += result.records
        t["applied"] += result.applied
        t["duplicates"] += result.duplicates
        t["outdated"] += result.outdated
        t["invalid"] += len(result.dead_letters)
        t["rows"] += result.users
        t["batches"] += 1
        if self.metrics is not None:
            self.metrics.observe_batch(result, time.perf_counter() - started, time.time())
        self._uncommitted = True

    def _roll_due(self) -> bool:
        if not self._uncommitted:
            self._roll_started = time.monotonic()
            return False
        if self.archive is None:
            return True
        a = self.config.archive
        return len(self.archive) >= a.roll_events or time.monotonic() - self._roll_started >= a.roll_seconds

    def _roll_and_commit(self) -> None:
        """Archive, dead letters, then the offsets: everything before a committed offset is durable."""
        offsets = self._roll()
        if offsets:
            try:
                self._timed("commit", lambda: self.consumer.commit(offsets))
            except Exception:
                self._count_commit(False)
                raise
            self._committed_ok(offsets)
        self._uncommitted = False

    def _roll(self) -> dict:
        """Write the archive roll and flush the dead letters; the offsets that may now be committed."""
        from kafka.structs import OffsetAndMetadata

        if not self._uncommitted:
            return {}
        self._timed("archive", self.archive.roll if self.archive is not None else lambda: None)
        self._timed("dlq_flush", lambda: self.dlq.flush(timeout=30))
        self._roll_started = time.monotonic()
        return {tp: OffsetAndMetadata(n, "", -1) for tp, n in self._next.items() if n != self._committed.get(tp)}

    def _committed_ok(self, offsets: dict) -> None:
        self._committed.update({tp: o.offset for tp, o in offsets.items()})
        self._count_commit(True)

    def _count_commit(self, ok: bool) -> None:
        if ok:
            self.totals["commits"] += 1
        if self.metrics is not None:
            self.metrics.commits.labels("ok" if ok else "failed").inc()
            if ok:
                self.metrics.last_commit.set(time.time())

    def _recover(self, error: Exception) -> None:
        """Forget everything since the last commit and read it again (its effects are idempotent)."""
        log.warning("batch or commit failed (%s: %s); re-reading from the last commit", type(error).__name__, error)
        if self.metrics is not None:
            self.metrics.errors.labels("commit" if "commit" in str(type(error)).lower() else "apply").inc()
        self._forget()
        for tp in self.consumer.assignment():
            if tp in self._committed:
                self.consumer.seek(tp, self._committed[tp])

    def _forget(self) -> None:
        self._pending, self._next, self._uncommitted = [], {}, False
        self.applier.reset()
        if self.archive is not None:
            self.archive.drop()

    # ---- rebalances (the listener runs inside poll(), on kafka-python's IO thread) ----
    async def revoked(self, partitions) -> None:
        """Apply what was polled, roll and commit before the partitions go to another consumer."""
        log.info("partitions revoked: %s", sorted(tp.partition for tp in partitions))
        if self.metrics is not None:
            self.metrics.rebalances.labels("revoked").inc()
        try:
            self._apply()
            offsets = self._roll()
            if offsets:  # the blocking commit() may not run on the IO thread: await the request instead
                await self.consumer.commit_async(offsets)
                self._committed_ok(offsets)
        except Exception as error:  # noqa: BLE001 - the next owner re-reads from the last commit
            self._count_commit(False)
            log.warning("could not commit on revocation (%s); the next owner re-reads from the last commit", error)
        self.lost(partitions, log_it=False)

    def lost(self, partitions, log_it: bool = True) -> None:
        """Partitions gone without a chance to commit (another consumer owns them already): forget."""
        if log_it:
            log.warning("partitions lost: %s", sorted(tp.partition for tp in partitions))
        self._forget()
        self._committed = {}

    def assigned(self, partitions) -> None:
        log.info("partitions assigned: %s", sorted(tp.partition for tp in partitions))
        if self.metrics is not None:
            self.metrics.rebalances.labels("assigned").inc()
        self._forget()
        self._taken_over |= set(partitions)

    def _take_over(self) -> None:
        """After an assignment, in the main thread: where each partition starts (the group's committed
        offset, else the log start), and the archive files of an uncommitted roll from there on removed."""
        partitions, self._taken_over = self._taken_over, set()
        for tp in partitions:
            start = self.consumer.committed(tp)
            if start is None:
                start = self.consumer.beginning_offsets([tp])[tp]
            self._committed[tp] = start
            if self.archive is not None:
                removed = self.archive.discard_from(tp.partition, start)
                if removed:
                    log.info("partition %s: removed %d archive file(s) of an uncommitted roll from offset %d",
                             tp.partition, len(removed), start)

    # ---- operations ----
    def _report_lag(self) -> None:
        if self.metrics is None:
            return
        lags = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                lags[tp.partition] = max(0, high - self._next.get(tp, self._committed.get(tp, high)))
        self.metrics.set_lag(lags)

    def _timed(self, stage: str, fn) -> None:
        started = time.perf_counter()
        fn()
        if self.metrics is not None:
            self.metrics.stage_seconds.labels(stage).observe(time.perf_counter() - started)

    def _maybe_reload_model(self) -> None:
        m = self.config.model
        if not (self.config.state.vector and m.model):
            return
        loaded = self._model_key is not None
        if (loaded and not m.reload_seconds) or \
                time.monotonic() - self._model_checked < (m.reload_seconds or 30.0):
            return
        self._model_checked = time.monotonic()
        try:
            path = bundle_path(m.model, m.tracking_uri, m.cache_dir)
        except Exception as error:  # noqa: BLE001 - no model yet: events still flow, vectors wait
            log.warning("no live vectors: model %s not available (%s)", m.model, error)
            return
        if str(path) == self._model_key:
            return
        vectors = LiveVectors.from_bundle(path)
        previous = self.applier.vectors.version if self.applier.vectors else None
        self.applier.vectors, self._model_key = vectors, str(path)
        log.info("live vectors: %s", f"model {vectors.version} ({path})" if vectors else f"{path} has no two-tower")
        if self.metrics is not None:
            self.metrics.set_model(vectors.version if vectors else None, previous)


def _Listener(owner: StreamConsumer):
    from kafka import AsyncConsumerRebalanceListener

    class Listener(AsyncConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked):
            await owner.revoked(revoked)

        async def on_partitions_lost(self, lost):
            owner.lost(lost)

        async def on_partitions_assigned(self, assigned):
            owner.assigned(assigned)

    return Listener()


def create_topics(config: StreamConfig) -> None:
    """The topic and its dead-letter topic with `partitions` partitions, unless they exist (dev setups)."""
    from recsys.streaming.broker import create_topics as create

    create(config.kafka.bootstrap_servers, {config.topic: config.partitions, config.dlq: config.partitions},
           **{k: v for k, v in config.kafka.client_config().items() if k != "bootstrap_servers"})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Kafka events -> online state, archive and DLQ.")
    parser.add_argument("--config", help="default: RECSYS_STREAM_CONFIG or configs/stream.yaml")
    parser.add_argument("--create-topics", action="store_true", help="create the topic and its DLQ if missing")
    parser.add_argument("--max-seconds", type=float, help="stop after this long (default: run until SIGTERM)")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    config = load_config(args.config)
    if args.create_topics:
        create_topics(config)
    metrics = None
    if config.metrics.port:
        from prometheus_client import start_http_server

        from recsys.monitoring.stream_metrics import StreamMetrics

        metrics = StreamMetrics()
        start_http_server(config.metrics.port, config.metrics.host)
    consumer = StreamConsumer(config, metrics)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: consumer.stop.set())
    totals = consumer.run(args.max_seconds)
    print(json.dumps({"totals": totals}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
