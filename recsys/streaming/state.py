"""The users' real-time state in the online store: each user's recent events, one row per user.

Where this sits: the stream consumer (recsys.streaming) folds a batch of events into these rows and writes
them; every serving worker and replica reads the requesting user's row once per request and applies the
events its model has not seen (seen filter, impression fatigue, candidate sources all read them). The row
lives in the Feast online store (sqlite by default, Redis in production) under the push view
`user_events_realtime` (feature_repo/feature_views.py; names in recsys.features.definitions).

Idempotence. A row is the user's newest `max_events` events, deduplicated by `event_id` and in event-time
order, so folding the same events in again (a redelivered batch, a replay after a crash) gives the same row,
and an old event merges into its place instead of overwriting newer state. Everything else the consumer
derives (counters, the live vector) is a function of the row, so it is idempotent too. The one writer of a
user's row is the consumer that owns the user's Kafka partition (events are keyed by user), which reads the
row, merges and writes it back: a row never goes back in time, which the sqlite online store would not
guard by itself.

Reads and writes go through Feast's online store interface (`OnlineStore.online_read` /
`online_write_batch`, the calls `get_online_features` and `write_to_online_store` end in) with value protos
built directly: one key lookup per request instead of Feast's response-to-DataFrame path, which profiled at
~40% of a worker's time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from recsys.features.definitions import (
    FLOAT32_LIST,
    FLOAT64,
    FLOAT64_LIST,
    INT64,
    STRING,
    STRING_LIST,
    USER_EVENTS,
    USER_KEY,
)

DEFAULT_MAX_EVENTS = 200  # events kept per user: the serving history beyond the model's is this window


@dataclass(frozen=True)
class UserEvents:
    """A user's recent events, oldest first, parallel tuples; `seconds` are UTC epoch seconds."""

    event_ids: tuple[str, ...] = ()
    item_ids: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    seconds: tuple[float, ...] = ()

    def __len__(self) -> int:
        return len(self.event_ids)

    @property
    def last_seconds(self) -> float | None:
        return self.seconds[-1] if self.seconds else None

    @property
    def stamp(self) -> tuple:
        """Changes whenever the row does (a merge that adds nothing keeps it)."""
        return (len(self.event_ids), self.event_ids[-1] if self.event_ids else None)

    def merge(self, events: Iterable, max_events: int = DEFAULT_MAX_EVENTS) -> tuple[UserEvents, int]:
        """(the row with `events` folded in, how many of them were new). `events` have event_id, item_id,
        event_type and seconds (recsys.streaming.events.Event or StreamEvent). Deduplicated by event_id (the
        first copy stays), sorted by (time, event_id) so the order does not depend on arrival, newest
        max_events kept."""
        known = set(self.event_ids)
        new = []
        for event in events:
            event_id = event.event_id
            if event_id in known:
                continue
            known.add(event_id)
            new.append((float(event.seconds), event_id, event.item_id, event.event_type))
        if not new:
            return self, 0
        new.sort(key=_order)
        if not self.event_ids or (self.seconds[-1], self.event_ids[-1]) < new[0][:2]:
            # The usual case: everything new is newer than the row, which is already in order: append.
            drop = max(0, len(self.event_ids) + len(new) - max_events)
            seconds, ids, items, types = zip(*new)
            row = UserEvents((self.event_ids + ids)[drop:], (self.item_ids + items)[drop:],
                             (self.event_types + types)[drop:], (self.seconds + seconds)[drop:])
            return row, min(len(new), max_events)
        before = set(self.event_ids)
        rows = sorted([*zip(self.seconds, self.event_ids, self.item_ids, self.event_types), *new], key=_order)
        rows = rows[-max_events:]
        added = sum(1 for r in rows if r[1] not in before)
        if not added:
            return self, 0
        seconds, ids, items, types = zip(*rows)
        return UserEvents(tuple(ids), tuple(items), tuple(types), tuple(float(s) for s in seconds)), added


def _order(row: tuple) -> tuple:
    return row[0], row[1]


EMPTY = UserEvents()


class OnlineEventStore:
    """Read and write users' rows of the Feast online store's push views (default `user_events_realtime`).

    `repo_path` / `fs_yaml` name the Feast repo and environment (feature_store.yaml: sqlite, or
    feature_store_redis.yaml), as everywhere else; the repo must have been applied (`feast apply`, the
    features pipeline). Thread-safe for reads from many threads when the online store client is (Redis);
    the sqlite store shares one connection, so callers serialise (the service reads on its event loop).

    `ordered_writes=True` is for the one writer of the rows (the stream consumer), which never writes a row
    older than the stored one (it reads, merges and writes back): the Redis store's own check, which skips
    a row whose time is not newer than the stored one's, is turned off (Feast's `skip_dedup`). That check
    would drop a row changed by a late event (same newest time, one more event) and costs a round trip."""

    def __init__(self, repo_path: str = "feature_repo", fs_yaml: str = "feature_store.yaml", store=None,
                 ordered_writes: bool = False):
        self.repo_path, self.fs_yaml = str(repo_path), fs_yaml
        self._store = store
        self._views: dict = {}
        self._online = None
        self.ordered_writes = ordered_writes

    @property
    def store(self):
        if self._store is None:
            from recsys.features.store import open_store

            self._store = open_store(self.repo_path, self.fs_yaml)
            online = self._store.config.online_store
            if self.ordered_writes and hasattr(online, "skip_dedup"):
                online.skip_dedup = True
        return self._store

    def _view(self, name: str):
        if name not in self._views:
            self._views[name] = self.store.get_feature_view(name)
        return self._views[name]

    def _provider(self):
        if self._online is None:
            from feast.infra.provider import get_provider

            self._online = get_provider(self.store.config)
        return self._online

    # ---- the user events view ----
    def read(self, user_ids: Sequence[str]) -> list[UserEvents]:
        """Each user's row (EMPTY when the store has none), in the order asked: one lookup for all."""
        out = []
        for _, values in self.read_view(USER_EVENTS, user_ids):
            if not values or values.get("rt_event_ids") is None:  # no row (Redis answers empty values)
                out.append(EMPTY)
                continue
            out.append(UserEvents(tuple(values.get("rt_event_ids", ())), tuple(values.get("rt_item_ids", ())),
                                  tuple(values.get("rt_event_types", ())),
                                  tuple(values.get("rt_event_seconds", ()))))
        return out

    def write(self, rows: Mapping[str, UserEvents]) -> int:
        """Write these users' rows (stamped with their newest event's time); returns how many."""
        return self.write_view(USER_EVENTS, {
            user: (datetime.fromtimestamp(row.seconds[-1], tz=timezone.utc),
                   {"rt_event_ids": row.event_ids, "rt_item_ids": row.item_ids,
                    "rt_event_types": row.event_types, "rt_event_seconds": row.seconds})
            for user, row in rows.items() if len(row)})

    # ---- any user-keyed view (counters, the live vector) ----
    def read_view(self, view: str, user_ids: Sequence[str]) -> list[tuple[datetime | None, dict | None]]:
        """(row time, {feature: python value}) per user, (None, None) where the store has no row."""
        if not len(user_ids):
            return []
        table = self._view(view)
        keys = [_entity_key(u) for u in user_ids]
        rows = self._provider().online_read(self.store.config, table, keys)
        return [(ts, {name: _python(value) for name, value in values.items()} if values else None)
                for ts, values in rows]

    def write_view(self, view: str, rows: Mapping[str, tuple[datetime, Mapping]]) -> int:
        """Write {user: (row time, {feature: value})} to the view; dtypes from the view's schema."""
        if not rows:
            return 0
        table = self._view(view)
        dtypes = {f.name: _DTYPE_OF_FEAST.get(str(f.dtype), STRING) for f in table.features}
        now = datetime.now(timezone.utc)
        data = [(_entity_key(user), {name: _proto(dtypes[name], value) for name, value in values.items()}, ts, now)
                for user, (ts, values) in rows.items()]
        self._provider().online_write_batch(self.store.config, table, data, progress=None)
        return len(data)


def _entity_key(user_id: str):
    return _pb().EntityKey(join_keys=[USER_KEY], entity_values=[_pb().Value(string_val=str(user_id))])


def _proto(dtype: str, value):
    """A feature value's proto. Lists are extended in place: ~2x faster than passing them to constructors."""
    out = _pb().Value()
    if dtype == STRING_LIST:
        out.string_list_val.val.extend(value if isinstance(value, tuple) else [str(v) for v in value])
    elif dtype == FLOAT64_LIST:
        out.double_list_val.val.extend(value)
    elif dtype == FLOAT32_LIST:
        out.float_list_val.val.extend(value)
    elif dtype == INT64:
        out.int64_val = int(value)
    elif dtype == FLOAT64:
        out.double_val = float(value)
    else:
        out.string_val = str(value)
    return out


_PB = None


def _pb():
    """Feast's protobuf classes, imported on first use (not at module import: the service imports this)."""
    global _PB
    if _PB is None:
        from types import SimpleNamespace

        from feast.protos.feast.types.EntityKey_pb2 import EntityKey
        from feast.protos.feast.types.Value_pb2 import DoubleList, FloatList, StringList, Value

        _PB = SimpleNamespace(EntityKey=EntityKey, Value=Value, StringList=StringList, DoubleList=DoubleList,
                              FloatList=FloatList)
    return _PB


def _python(value):
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    got = getattr(value, kind)
    return tuple(got.val) if kind.endswith("_list_val") else got


# str(feast.types.*) as the view's schema reports them -> the project's dtype names
_DTYPE_OF_FEAST = {"Array(String)": STRING_LIST, "Array(Float64)": FLOAT64_LIST, "Array(Float32)": FLOAT32_LIST,
                   "Int64": INT64, "Float64": FLOAT64, "String": STRING}
