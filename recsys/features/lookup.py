"""One key lookup of an entity's rows in several Feast online views: what a request reads from the store.

Where this sits: the service reads, once per request, the requesting user's rows of the views it needs --
the ranker's daily store features (recsys.features.online.OnlineFeatures) and, with Kafka, the user's recent
events (`user_events_realtime`, recsys.streaming.state) -- through this one call. It goes through Feast's
online store (its storage layout, through the helpers its own reads use) and turns the stored value protos
into Python values only when they are used: Feast's `get_online_features` plus its answer as a DataFrame
profiled at ~40-50% of a serving worker's samples for one user row; a request whose row has not changed
parses nothing (`Values.blobs`, the stored bytes, are what it compares).

Redis keeps all of an entity's views under one hash, so the views are read in one pipelined round trip
(`RedisOnlineStore._read_hash_fields`, what Feast's own multi-view read batches with). sqlite keeps one
table per view, one row per (entity, feature): they are read in one query (a UNION ALL over the views'
tables on the store's own connection), the row time decoded once per view -- Feast's `online_read` runs one
query per view and converts every feature row's timestamp. Any other online store: `online_read` per view.
Hand-written (both fast paths): they read Feast's storage layout through its private helpers
(`_read_hash_fields`, `_table_id`, `_get_conn`), checked at first use; a Feast version without them takes
`online_read`, and a test checks both against it.

Failures: a read that raises is counted (`counts["errors"]`, `last_error`) and answers every row missing;
for `retry_after` seconds after it, reads answer missing at once without asking the store (a client would
otherwise wait on a dead store on every request), unless `probe` (the health check) asks anyway.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

log = logging.getLogger(__name__)


class Values(Mapping):
    """A view row's features, {name: Python value}, parsed from the stored protos on first access. `blobs`:
    the stored bytes in name order -- equal blobs, equal values -- for comparing rows without parsing."""

    __slots__ = ("_raw", "_parsed")

    def __init__(self, raw: dict[str, bytes]):
        self._raw, self._parsed = raw, None

    @property
    def blobs(self) -> tuple:
        return tuple(self._raw[name] for name in sorted(self._raw))

    def _values(self) -> dict:
        if self._parsed is None:
            from feast.protos.feast.types.Value_pb2 import Value

            parsed = {}
            for name, blob in self._raw.items():
                value = Value()
                value.ParseFromString(blob)
                parsed[name] = python_value(value)
            self._parsed = parsed
        return self._parsed

    def __getitem__(self, name):
        return self._values()[name]

    def __iter__(self):
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def __contains__(self, name) -> bool:
        return name in self._raw


Row = tuple[datetime | None, Values | None]  # (row time, its features); (None, None): no row


class Health:
    """Counts, the last error and the pause after a failure, shared by the lookups of one store client."""

    def __init__(self, retry_after: float = 5.0, counts: Counter | None = None):
        self.retry_after = float(retry_after)
        self.counts = Counter() if counts is None else counts
        self.last_error: str | None = None
        self.down_until = 0.0


class KeyLookup:
    """Read the rows of `views` (Feast feature view names, all keyed by `join_key`) for a list of keys.
    `store`: an open feast.FeatureStore, or a callable returning one (opened on first use)."""

    def __init__(self, views: Sequence[str], join_key: str, store, health: Health | None = None):
        self.views, self.join_key = tuple(views), join_key
        self._store, self._reader = store, None
        self._lock = threading.Lock()  # one connection per lookup: the service's threads take turns
        self.health = health or Health()

    @property
    def counts(self) -> Counter:
        return self.health.counts

    @property
    def store(self):
        if callable(self._store):
            self._store = self._store()
        return self._store

    def read(self, keys: Sequence[str], probe: bool = False) -> list[dict[str, Row]]:
        """Per key, {view: (row time, Values)}, every view present ((None, None) where the store has no row);
        in the order asked. Never raises: a failed read answers every row missing."""
        rows = self.fetch(keys, probe)
        return [dict.fromkeys(self.views, (None, None)) for _ in keys] if rows is None else rows

    def fetch(self, keys: Sequence[str], probe: bool = False) -> list[dict[str, Row]] | None:
        """`read`, but None when the store failed or is paused after a failure."""
        if not keys:
            return []
        health = self.health
        if not probe and time.time() < health.down_until:
            health.counts["skipped"] += 1
            return None
        started = time.perf_counter()
        try:
            with self._lock:
                if self._reader is None:
                    self._reader = _reader(self.store, self.views, self.join_key)
                per_view = self._reader(list(keys))
            health.down_until = 0.0
        except Exception as error:  # a failed read degrades to missing rows, never a failed request
            health.counts["errors"] += 1
            health.last_error = f"{type(error).__name__}: {error}"
            if type(error).__name__ == "FeatureViewNotFoundException":  # the repo was applied without it
                health.last_error += " (apply the Feast repo: python run.py --pipeline features, or feast apply)"
            health.down_until = time.time() + health.retry_after
            log.warning("online store read failed (%s): rows treated as missing for %.0f s", health.last_error,
                        health.retry_after)
            return None
        finally:
            health.counts["reads"] += 1
            health.counts["read_seconds"] += time.perf_counter() - started
        return [{view: rows[n] for view, rows in zip(self.views, per_view)} for n in range(len(keys))]


def _reader(store, views, join_key):
    """`read(keys) -> [[Row per key] per view]` for this store's online store: the fast path that fits."""
    from feast.infra.provider import get_provider

    config = store.config
    online = get_provider(config).online_store
    tables = [store.get_feature_view(v) for v in views]
    version = config.entity_key_serialization_version
    for build in (_redis_reader, _sqlite_reader):
        reader = build(online, config, tables, join_key, version)
        if reader is not None:
            return reader

    def each_view(keys):
        entity_keys = [_entity_key(join_key, k, version)[0] for k in keys]
        return [[_row(ts, values) for ts, values in online.online_read(config, table, entity_keys)]
                for table in tables]
    return each_view


def _sqlite_reader(online, config, tables, join_key, version):
    """Every view of every key in one sqlite query, or None when `online` is not Feast's sqlite store."""
    if type(online).__name__ != "SqliteOnlineStore" or not hasattr(online, "_get_conn"):
        return None
    try:
        from feast.infra.online_stores.sqlite import _quote_id, _table_id
    except ImportError:
        return None
    names = [_quote_id(_table_id(config.project, t, config.registry.enable_online_feature_view_versioning))
             for t in tables]
    plans: dict[int, str] = {}  # keys per read -> the query

    def read(keys):
        sql = plans.get(len(keys))
        if sql is None:  # one key (a request): `=`, and no key column to return (~25% less than IN)
            match, key = ("= ?", "0") if len(keys) == 1 else (f"IN ({','.join('?' * len(keys))})", "entity_key")
            sql = plans[len(keys)] = " UNION ALL ".join(  # CAST: the raw epoch, no per-row timestamp converter
                f"SELECT {n}, {key}, feature_name, value, CAST(event_ts AS INTEGER) FROM {name} "
                f"WHERE entity_key {match}" for n, name in enumerate(names))
        blobs = [_entity_key(join_key, k, version)[1] for k in keys]
        at = {blob: n for n, blob in enumerate(blobs)} if len(keys) > 1 else {0: 0}
        found = [[{} for _ in keys] for _ in names]
        stamps = [[0] * len(keys) for _ in names]
        for view, key, name, value, ts in online._get_conn(config).execute(sql, blobs * len(names)).fetchall():
            found[view][at[key]][name] = value
            stamps[view][at[key]] = ts
        return [[(datetime.fromtimestamp(ts, tz=timezone.utc), Values(raw)) if raw else (None, None)
                 for raw, ts in zip(found[v], stamps[v])] for v in range(len(names))]
    return read


def _redis_reader(online, config, tables, join_key, version):
    """Every view of every key in one Redis pipeline, or None when `online` is not Feast's Redis store."""
    if type(online).__name__ != "RedisOnlineStore":
        return None
    try:
        from feast.infra.online_stores.redis import _versioned_fv_name
        from google.protobuf.timestamp_pb2 import Timestamp
    except ImportError:
        return None
    if not all(hasattr(online, n) for n in ("_generate_hset_keys_for_features", "_read_hash_fields")):
        return None
    plans = []  # per view: (feature names, hash fields with the time field last)
    for table in tables:
        requested, fields = online._generate_hset_keys_for_features(table, None,
                                                                    fv_name_override=_versioned_fv_name(table, config))
        plans.append((requested[:-1], fields))
    suffix = config.project.encode("utf-8")  # Feast's Redis key: the serialized entity key + the project

    def read(keys):
        redis_keys = [_entity_key(join_key, k, version)[1] + suffix for k in keys]
        replies = online._read_hash_fields(config, [(key, fields) for _, fields in plans for key in redis_keys])
        out = []
        for v, (names, _) in enumerate(plans):
            rows = []
            for reply in replies[v * len(keys):(v + 1) * len(keys)]:
                raw = {name: blob for name, blob in zip(names, reply[:-1]) if blob}
                if not raw:
                    rows.append((None, None))
                    continue
                ts = Timestamp()
                if reply[-1]:
                    ts.ParseFromString(reply[-1])
                rows.append((datetime.fromtimestamp(ts.seconds + ts.nanos / 1e9, tz=timezone.utc), Values(raw)))
            out.append(rows)
        return out
    return read


def _row(ts, protos) -> Row:
    if not protos or not any(v.WhichOneof("val") for v in protos.values()):
        return None, None
    return ts, Values({name: value.SerializeToString() for name, value in protos.items()})


def python_value(value):
    """A Feast value proto as a Python value: None when unset, a tuple for list types."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    got = getattr(value, kind)
    return tuple(got.val) if kind.endswith("_list_val") else got


@functools.lru_cache(maxsize=65536)
def _entity_key(join_key: str, key: str, version: int = 3):
    """(EntityKey proto, its serialized bytes) of one key: the requests' users come back, so kept."""
    from feast.infra.key_encoding_utils import serialize_entity_key
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    proto = EntityKey(join_keys=[join_key], entity_values=[Value(string_val=str(key))])
    return proto, serialize_entity_key(proto, entity_key_serialization_version=version)
