"""The stream consumer: events from Kafka into the online state, the archive and the dead-letter topic.

    python -m recsys.streaming.consumer [--config configs/stream.yaml] [--create-topics]

A long-running process (not a ZenML run); several of them with the same group id split the topic's
partitions. At-least-once, idempotent effects (recsys.streaming.apply):

- offsets are committed by hand (`enable_auto_commit=False`), the next offset of what is done, and only once
  everything before it is durable: the online rows are written per batch; the archive and the dead letters
  per roll (every `archive.roll_seconds` / `roll_events`, acknowledged by the broker); then the commit. A crash
  re-reads at most one roll, whose effects are idempotent by event_id (recsys.streaming.offsets);
- batches are bounded by count and time (`consumer.max_batch_events`, `max_batch_seconds`) and applied as
  soon as the consumer has caught up with the partitions' ends, so a poll loop stays far below
  `max_poll_interval_ms`, and an event is applied within about a poll under light load;
- the archive and the dead letters of a roll are written in a background thread (recsys.streaming.roll);
- rebalances (recsys.streaming.rebalance): on a revocation the consumer applies what it polled, rolls and
  commits before giving the partitions up; an assigned partition is cleaned of an uncommitted roll's files;
- a failed write, roll or commit (online store or broker down) re-reads from the last durable offset after
  `consumer.retry_seconds`;
- SIGTERM / SIGINT: finish the batch, roll, commit, leave the group, exit 0.

Prometheus metrics (recsys.monitoring.stream_metrics) on `metrics.port`; a summary line is logged every
10 s and at exit.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import signal
import sys
import threading
import time

from recsys.streaming.apply import BatchApplier
from recsys.streaming.archive import EventArchive
from recsys.streaming.config import StreamConfig, load_config
from recsys.streaming.effects import ModelWatcher
from recsys.streaming.offsets import Offsets, as_metadata
from recsys.streaming.rebalance import Rebalancing, listener
from recsys.streaming.roll import BackgroundRoll
from recsys.streaming.state import OnlineEventStore

log = logging.getLogger("recsys.streaming.consumer")
TOTALS = ("records", "applied", "duplicates", "outdated", "invalid", "rows", "batches", "commits")


class StreamConsumer(Rebalancing):
    def __init__(self, config: StreamConfig, metrics=None, store: OnlineEventStore | None = None):
        self.config, self.metrics = config, metrics
        state, model = config.state, config.model
        self.store = store or OnlineEventStore(state.repo_path, state.fs_yaml, ordered_writes=True)
        self.archive = EventArchive(config.archive.root, config.topic, config.archive.fsync) \
            if config.archive.root else None
        self.applier = BatchApplier(self.store, config.topic, self.archive, None, state.max_events,
                                    state.counters, state.cache_users, state.derived_seconds)
        self.models = ModelWatcher(model.model if state.vector else None, model.tracking_uri, model.cache_dir,
                                   model.reload_seconds)
        self.stop = threading.Event()
        self.totals = dict.fromkeys(TOTALS, 0)
        self.consumer = self.dlq = self.roller = None
        self.offsets = Offsets()
        self._pending: list = []  # polled ConsumerRecords, not applied yet
        self._letters: list[dict] = []  # dead letters of the roll, produced before its commit
        self._unrolled = False  # applied since the last roll
        self._roll_started = time.monotonic()
        self._taken_over: set = set()  # assigned, paused until `_take_over` knows where they start
        self._rewind: dict = {}  # partitions kept through a rebalance whose roll failed: seek back here

    # ---- the loop ----
    def run(self, max_seconds: float | None = None) -> dict:
        from kafka import KafkaConsumer, KafkaProducer

        c, k = self.config.consumer, self.config.kafka
        self.consumer = KafkaConsumer(
            **k.client_config(), group_id=c.group_id, enable_auto_commit=False, auto_offset_reset="earliest",
            max_poll_records=c.max_poll_records, max_poll_interval_ms=c.max_poll_interval_ms,
            session_timeout_ms=c.session_timeout_ms, heartbeat_interval_ms=c.heartbeat_interval_ms,
            fetch_max_wait_ms=c.fetch_max_wait_ms,
            **({"group_instance_id": c.group_instance_id} if c.group_instance_id else {}))
        self.dlq = KafkaProducer(**k.client_config(), acks="all", retries=5, linger_ms=5)
        self.roller = BackgroundRoll(self.archive, self.dlq, self.config.dlq, self._observe)
        # Slow first-time work before joining the group (a member must poll within max_poll_interval_ms):
        # the store and the model are opened, the DLQ topic is checked (a bad name fails here, not later).
        _one_blas_thread()
        self.applier.warm_up()
        self._reload_model()
        self.dlq.partitions_for(self.config.dlq)
        gc.freeze()  # what is loaded now lives as long as the process: full collections skip it
        self.consumer.subscribe([self.config.topic], listener=listener(self))
        deadline = time.monotonic() + max_seconds if max_seconds else None
        last_report = time.monotonic()
        log.info("consuming %s as group %s from %s", self.config.topic, c.group_id, k.bootstrap_servers)
        try:
            while not self.stop.is_set() and (deadline is None or time.monotonic() < deadline):
                self._reload_model()
                try:
                    self._collect()
                    self._apply()
                    self._roll_and_commit()
                except Exception as error:  # noqa: BLE001 - any failure: read again from what is durable
                    self._recover(error)
                    self.stop.wait(c.retry_seconds)
                self._report_lag()
                if time.monotonic() - last_report >= 10:
                    log.info("totals %s", json.dumps(self.totals))
                    last_report = time.monotonic()
            self._apply()
            self._roll_and_commit(wait=True)
        finally:
            self.consumer.close(autocommit=False)
            self.roller.close()
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
            asked = min(room, c.max_poll_records)
            polled = self.consumer.poll(timeout_ms=min(left_ms, 200), max_records=asked)
            got = 0
            for tp, messages in polled.items():
                self._pending += messages  # ConsumerRecords: partition, offset, value, key, timestamp
                self.offsets.polled(tp, messages[-1].offset + 1)
                got += len(messages)
            if self._taken_over:
                self._take_over()
            # Apply now unless there is a backlog to batch: a short poll means the consumer is near the end.
            if not got or got < asked // 2 or len(self._pending) >= c.max_batch_events or not left_ms \
                    or self._caught_up():
                return

    def _lags(self) -> dict:
        out = {}
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is not None:
                out[tp] = max(0, high - self.offsets.position(tp, high))
        return out

    def _caught_up(self) -> bool:
        return not any(self._lags().values())

    def _apply(self) -> None:
        if not self._pending:
            return
        batch, started = self._pending, time.perf_counter()
        self._pending = []
        result = self.applier.apply(batch)
        self._letters += result.dead_letters
        for key, n in (("records", result.records), ("applied", result.applied), ("duplicates", result.duplicates),
                       ("outdated", result.outdated), ("invalid", len(result.dead_letters)),
                       ("rows", result.users), ("batches", 1)):
            self.totals[key] += n
        if self.metrics is not None:
            self.metrics.observe_batch(result, time.perf_counter() - started, time.time())
        log.debug("batch of %d records (%d applied, %d duplicates, %d rows) in %.3f s", result.records,
                  result.applied, result.duplicates, result.users, time.perf_counter() - started)
        self._unrolled = True

    def _roll_due(self) -> bool:
        if not self._unrolled:
            self._roll_started = time.monotonic()
            return False
        a = self.config.archive
        return self.archive is None or len(self.archive) >= a.roll_events or \
            time.monotonic() - self._roll_started >= a.roll_seconds

    def _roll_and_commit(self, wait: bool = False) -> None:
        """Take a finished background roll, start the next one when due (all of it now when `wait`), and
        commit what is durable."""
        if wait:
            self._make_durable()
        else:
            done = self.roller.finish()
            if done is not None:
                self.offsets.rolled(done)
            if not self.roller.busy and self._roll_due():
                self._start_roll()
        offsets = self.offsets.to_commit(self.consumer.assignment())
        if offsets:
            _fault_point("before-commit")
            try:
                self._timed("commit", lambda: self.consumer.commit(as_metadata(offsets)))
            except Exception:
                self._count_commit(False)
                raise
            self.offsets.commit_done(offsets)
            self._count_commit(True)

    def _start_roll(self) -> None:
        """The derived views now (the store client stays in this thread), the archive and dead letters in the
        background (recsys.streaming.roll)."""
        self._timed("derived", self.applier.flush_derived)
        self.roller.start(self.offsets.applied, self._letters)
        self._letters, self._unrolled, self._roll_started = [], False, time.monotonic()

    def _count_commit(self, ok: bool) -> None:
        self.totals["commits"] += ok
        if self.metrics is not None:
            self.metrics.commits.labels("ok" if ok else "failed").inc()
            if ok:
                self.metrics.last_commit.set(time.time())

    def _recover(self, error: Exception) -> None:
        """Forget what is not durable and read it again (its effects are idempotent)."""
        log.warning("batch, roll or commit failed (%s: %s); reading again from the last durable offset",
                    type(error).__name__, error)
        if self.metrics is not None:
            self.metrics.errors.labels("commit" if "commit" in type(error).__name__.lower() else "apply").inc()
        self._forget()
        assigned = self.consumer.assignment()
        for tp, offset in self.offsets.rewind().items():
            if tp in assigned:
                self.consumer.seek(tp, offset)

    def _forget(self) -> None:
        self.roller.abandon()
        self._pending, self._letters, self._unrolled = [], [], False
        self.offsets.rewind()
        self.applier.reset()
        if self.archive is not None:
            self.archive.drop()

    # ---- operations ----
    def _count_rebalance(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.rebalances.labels(kind).inc()

    def _report_lag(self) -> None:
        if self.metrics is not None:
            self.metrics.set_lag({tp.partition: lag for tp, lag in self._lags().items()})

    def _timed(self, stage: str, fn) -> None:
        started = time.perf_counter()
        fn()
        self._observe(stage, time.perf_counter() - started)

    def _observe(self, stage: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.stage_seconds.labels(stage).observe(seconds)

    def _reload_model(self) -> None:
        changed, vectors = self.models.check(time.monotonic())
        if not changed:
            return
        previous = self.applier.vectors.version if self.applier.vectors else None
        self.applier.vectors = vectors
        gc.freeze()
        log.info("live vectors: %s", f"model {vectors.version} ({self.models.key})" if vectors
                 else f"{self.models.key} has no two-tower: no vector view")
        if self.metrics is not None:
            self.metrics.set_model(vectors.version if vectors else None, previous)


def _one_blas_thread() -> None:
    """The user tower's matrices are a batch of users by ~100: one BLAS thread computes them 8x faster than
    the default pool contending for the cores (measured on the 2-core box: 3.5 vs 30 ms for 200 users)."""
    global _BLAS_LIMIT
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return
    _BLAS_LIMIT = threadpool_limits(limits=1)  # kept: the limit holds for the process's life


_BLAS_LIMIT = None


_FAULTS: dict[str, int] = {}


def _fault_point(name: str) -> None:
    """Fault injection for the crash tests: RECSYS_STREAM_FAULT=before-commit:N makes the process SIGKILL
    itself just before its Nth commit, after that roll's archive and dead letters are durable. A kill from
    outside cannot be timed into the microseconds between the two, and a frozen broker would still apply a
    commit request already in its socket once it resumes. Unset in production."""
    spec = os.environ.get("RECSYS_STREAM_FAULT", "")
    if spec.startswith(f"{name}:"):
        _FAULTS[name] = _FAULTS.get(name, 0) + 1
        if _FAULTS[name] == int(spec.split(":", 1)[1]):
            log.warning("RECSYS_STREAM_FAULT=%s: killing this process", spec)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)


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
    logging.getLogger("feast").setLevel(logging.WARNING)  # "Registry cache expired, so refreshing" per read
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
    try:
        totals = consumer.run(args.max_seconds)
    except RuntimeError as error:  # a setup problem with a clear message (e.g. the Feast repo not applied)
        print(f"stream consumer: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"totals": totals}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
