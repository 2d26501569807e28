"""A batch of Kafka records -> its effects: user rows, counters, live vectors, archive, dead letters.

Where this sits: recsys.streaming.consumer polls the topic and hands each batch here; nothing in this module
talks to Kafka, so the effects are tested without a broker. For one batch:

  1. every record is parsed (recsys.streaming.events); one that does not parse becomes a dead-letter record
     (`dead_letter`: the error, the field at fault, topic, partition, offset, key and the raw value) for the
     consumer to produce to `<topic>.dlq`; the partition moves on;
  2. the batch's users' rows are read in one multi-key lookup (or taken from the in-memory copy of the rows
     this consumer owns), merged with their events (deduplicated by event_id), and each changed row is
     written once: one row per user per batch, whatever the number of events;
  3. for users whose interactions changed, the counters and the live vector, derived from the new row, are
     written to their push views (one write per view per batch);
  4. every valid event is buffered in the archive (written when the consumer rolls it, before committing).

Redelivered events are counted as `duplicates` (their event_id is in the row already) and change nothing;
events older than a full row's oldest are `outdated` (they do not fit the window) and change nothing either.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import NamedTuple

from recsys.features.definitions import USER_COUNTERS, USER_EVENTS, USER_VECTOR
from recsys.streaming.archive import EventArchive
from recsys.streaming.effects import LiveVectors, counters
from recsys.streaming.events import IMPRESSION, InvalidEvent, decode
from recsys.streaming.state import EMPTY, OnlineEventStore, UserEvents

MAX_LETTER_VALUE = 256 * 1024  # bytes of a poison message's value kept in its dead letter


class Record(NamedTuple):
    """One Kafka message: the attributes of kafka-python's ConsumerRecord the batch reads (the consumer
    hands those over as they are; tests build these)."""

    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    timestamp: int | None = None  # ms since the epoch, the broker's or the producer's


@dataclass
class BatchResult:
    records: int = 0
    events: int = 0  # valid events
    applied: int = 0  # events that changed a row
    duplicates: int = 0  # already in the row (a redelivery, or the same event_id sent twice)
    outdated: int = 0  # older than the whole window of a full row
    users: int = 0  # rows written
    dead_letters: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # stage -> time spent
    event_seconds: list[float] = field(default_factory=list)  # event times of the applied events


def dead_letter(record: Record, topic: str, error: Exception) -> dict:
    """The `<topic>.dlq` message for a record that is not a contract event. The raw value travels as text
    when it is UTF-8, else base64 (`value_base64`); beyond MAX_LETTER_VALUE bytes only its head does
    (`value_truncated`, with `value_bytes` and `value_sha256` of the whole), so a dead letter always fits
    the producer's request size and a huge poison message cannot block its partition."""
    value = record.value or b""
    out = {"error": str(error), "field": getattr(error, "field", ""), "error_type": type(error).__name__,
           "topic": topic, "partition": record.partition, "offset": record.offset,
           "timestamp_ms": record.timestamp, "key": _text(record.key and record.key[:MAX_LETTER_VALUE]),
           "value_bytes": len(value), "failed_at": datetime.now(timezone.utc).isoformat()}
    if len(value) > MAX_LETTER_VALUE:
        out.update(value_truncated=True, value_sha256=hashlib.sha256(value).hexdigest())
        value = value[:MAX_LETTER_VALUE]
    try:
        out["value"] = value.decode("utf-8")
    except UnicodeDecodeError:
        out["value_base64"] = base64.b64encode(value).decode()
    return out


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", errors="replace") if raw is not None else None


class BatchApplier:
    """Applies batches for one consumer. `rows` is the in-memory copy of the rows of users whose partitions
    this consumer owns (their only writer), bounded LRU; `reset()` drops it (on a rebalance)."""

    def __init__(self, store: OnlineEventStore, topic: str, archive: EventArchive | None = None,
                 vectors: LiveVectors | None = None, max_events: int = 200, with_counters: bool = True,
                 cache_users: int = 50_000, derived_seconds: float = 0.0):
        self.store, self.topic, self.archive, self.vectors = store, topic, archive, vectors
        self.max_events, self.with_counters, self.cache_users = max_events, with_counters, cache_users
        self.derived_seconds = derived_seconds
        self.rows: OrderedDict[str, UserEvents] = OrderedDict()
        self._counter_names: list[str] | None = None
        self._derived: dict[str, UserEvents] = {}  # users whose counters / vector are not written yet ...
        self._marked: dict[str, float] = {}  # ... and since when (insertion order = time order)

    def reset(self) -> None:
        """Forget the in-memory rows and the derived writes not done yet (their events will be read again:
        a redelivered interaction marks its user for a derived write, so nothing is left stale)."""
        self.rows.clear()
        self._derived.clear()
        self._marked.clear()

    def flush_derived(self, result: BatchResult | None = None, older_than: float | None = None) -> int:
        """Write the counters and the live vector of the users marked (before `older_than`, monotonic time;
        None: all); how many. Each batch flushes the users marked `derived_seconds` ago, so the writes are
        spread over the batches; the consumer flushes all before each commit, so they are durable before
        their events' offsets."""
        users = []
        for user, since in self._marked.items():
            if older_than is not None and since > older_than:
                break
            users.append(user)
        if not users:
            return 0
        rows = [self._derived.pop(u) for u in users]
        for user in users:
            del self._marked[user]
        clock = time.perf_counter()
        if self.with_counters:
            names = self.counter_names()
            self.store.write_view(USER_COUNTERS, {u: (_row_time(r), counters(r, names)) for u, r in zip(users, rows)})
            clock = _lap(result, "write_counters", clock) if result is not None else clock
        if self.vectors is not None:
            values = self.vectors.features(users, rows)
            self.store.write_view(USER_VECTOR, {u: (_row_time(r), v) for u, r, v in zip(users, rows, values)})
            _lap(result, "write_vector", clock) if result is not None else None
        return len(users)

    def warm_up(self) -> None:
        """Open the online store and read the views' schemas now (seconds on a cold start), not inside the
        first batch: a consumer that joined its group must poll again within max_poll_interval_ms."""
        try:
            self.store._view(USER_EVENTS)
        except Exception as error:  # noqa: BLE001 - any reason the view is not there: say what to do
            raise RuntimeError(
                f"the Feast repo {self.store.repo_path} ({self.store.fs_yaml}) has no {USER_EVENTS} view yet "
                f"({type(error).__name__}: {error}); apply it first: python run.py --pipeline features, or "
                f"cd feature_repo && feast -f {self.store.fs_yaml} apply") from None
        self.store._provider()
        if self.with_counters:
            self.counter_names()

    def counter_names(self) -> list[str]:
        if self._counter_names is None:
            self._counter_names = [f.name for f in self.store._view(USER_COUNTERS).features]
        return self._counter_names

    def apply(self, records: list) -> BatchResult:
        """`records`: Record or kafka-python ConsumerRecord objects (partition, offset, value, key, timestamp)."""
        result = BatchResult(records=len(records))
        clock = time.perf_counter()
        by_user: dict[str, list] = {}
        for record in records:
            try:
                if record.value is None:
                    raise InvalidEvent("empty message (no value)", "")
                event = decode(record.value)
            except InvalidEvent as error:
                result.dead_letters.append(dead_letter(record, self.topic, error))
                continue
            by_user.setdefault(event.user_id, []).append(event)
            if self.archive is not None:
                self.archive.add(record.partition, record.offset, event)
            result.events += 1
        clock = _lap(result, "parse", clock)

        users = list(by_user)
        missing = [u for u in users if u not in self.rows]
        read = dict(zip(missing, self.store.read(missing))) if missing else {}
        clock = _lap(result, "read", clock)

        merged: dict[str, UserEvents] = {}
        changed: dict[str, UserEvents] = {}
        derived: dict[str, UserEvents] = {}  # users whose interactions are new or redelivered
        for user in users:
            old = self.rows[user] if user in self.rows else read.get(user, EMPTY)
            events = by_user[user]
            known = set(old.event_ids)
            fresh = {e.event_id: e for e in events if e.event_id not in known}
            result.duplicates += len(events) - len(fresh)
            row, added = old.merge(fresh.values(), self.max_events)
            result.outdated += len(fresh) - added
            result.applied += added
            merged[user] = row
            new = []
            if added:
                changed[user] = row
                kept = set(row.event_ids) if added < len(fresh) else None
                new = [e for e in fresh.values() if kept is None or e.event_id in kept]
                result.event_seconds += [e.seconds for e in new]
            # A redelivered interaction may be one whose derived write was lost in a crash: write it again.
            if any(e.event_type != IMPRESSION for e in (new if len(fresh) == len(events) else events)):
                derived[user] = row
        clock = _lap(result, "merge", clock)

        result.users = self.store.write(changed)
        _lap(result, "write_events", clock)
        for user, row in merged.items():  # only once the rows are written: the copy never runs ahead
            self._remember(user, row)
        now = time.monotonic()
        for user, row in derived.items():
            self._derived[user] = row
            self._marked.setdefault(user, now)
        self.flush_derived(result, older_than=now - self.derived_seconds)
        return result

    def _remember(self, user: str, row: UserEvents) -> None:
        if not self.cache_users:
            return
        self.rows[user] = row
        self.rows.move_to_end(user)
        while len(self.rows) > self.cache_users:
            self.rows.popitem(last=False)


def _row_time(row: UserEvents) -> datetime:
    return datetime.fromtimestamp(row.seconds[-1], tz=timezone.utc)


def _lap(result: BatchResult, stage: str, clock: float) -> float:
    now = time.perf_counter()
    result.seconds[stage] = result.seconds.get(stage, 0.0) + now - clock
    return now
