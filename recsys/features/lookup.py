"""One key lookup of an entity's rows in several Feast online views: what a request reads from the store.

Where this sits: the service reads, once per request, the requesting user's rows of the views it needs --
the ranker's daily store features (recsys.features.online.OnlineFeatures) and, with Kafka, the user's recent
events (`user_events_realtime`, recsys.streaming.state) -- through this one call. It goes through Feast's
online store interface (`OnlineStore.online_read`, what `get_online_features` ends in) and turns the value
protos into Python values directly: Feast's `get_online_features` plus its answer as a DataFrame profiled at
~40% of a serving worker's samples for one user row, this costs a fraction of it.

Redis keeps all of an entity's views under one hash, so the views are read in one pipelined round trip
(the calls Feast's own multi-view read batches with; `RedisOnlineStore._read_hash_fields`). sqlite keeps one
table per view, one row per (entity, feature): they are read in one query (a UNION ALL over the views'
tables on the store's own connection), the row time decoded once per view -- Feast's `online_read` runs one
query per view and converts every feature row's timestamp (~3x the time). Any other online store:
`online_read` per view. Hand-written (both fast paths): they read Feast's storage layout through its
private helpers (`_read_hash_fields`, `_table_id`, `_get_conn`), checked at first use; a Feast version
without them takes `online_read`.

Failures: a read that raises is counted (`counts["errors"]`, `last_error`) and answers every row missing;
for `retry_after` seconds after it, reads answer missing at once without asking the store (a client would
otherwise wait on a dead store on every request), unless `probe` (the health check) asks anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone

log = logging.getLogger(__name__)
Row = tuple[datetime | None, dict | None]  # (row time, {feature: python value}); (None, None): no row


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
        self._store, self._tables, self._online = store, None, None
        self._lock = threading.Lock()  # the sqlite store shares one connection across threads
        self.health = health or Health()

    @property
    def counts(self) -> Counter:
        return self.health.counts

    @property
    def store(self):
        if callable(self._store):
            self._store = self._store()
        return self._store

    def _prepare(self):
        if self._tables is None:
            from feast.infra.online_stores.online_store import OnlineStore  # noqa: F401 - fail early if absent
            from feast.infra.provider import get_provider

            store = self.store
            self._online = get_provider(store.config).online_store
            self._tables = [store.get_feature_view(v) for v in self.views]
        return self._online, self._tables

    def read(self, keys: Sequence[str], probe: bool = False) -> list[dict[str, Row]]:
        """Per key, {view: (row time, {feature: value})}, every view present ((None, None) where the store has
        no row); in the order asked. Never raises: a failed read answers every row missing."""
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
                online, tables = self._prepare()
                per_view = self._read(online, tables, [_entity_key(self.join_key, k) for k in keys])
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

    def _read(self, online, tables, entity_keys) -> list[list[Row]]:
        config = self.store.config
        batched = _redis_read(online, config, tables, entity_keys)
        if batched is None:
            batched = _sqlite_read(online, config, tables, entity_keys)
        if batched is not None:
            return batched
        return [[_row(ts, values) for ts, values in online.online_read(config, table, entity_keys)]
                for table in tables]


def _redis_read(online, config, tables, entity_keys) -> list[list[Row]] | None:
    """Every view of every key in one Redis pipeline, or None when `online` is not Feast's Redis store (or
    a Feast version without these helpers: then the caller reads view by view)."""
    if type(online).__name__ != "RedisOnlineStore":
        return None
    try:
        from feast.infra.online_stores.redis import _versioned_fv_name
    except ImportError:
        return None
    needed = ("_generate_hset_keys_for_features", "_generate_redis_keys_for_entities", "_read_hash_fields",
              "_get_features_for_entity")
    if not all(hasattr(online, name) for name in needed):
        return None
    redis_keys = online._generate_redis_keys_for_entities(config, entity_keys)
    plans = []
    for table in tables:
        name = _versioned_fv_name(table, config)
        requested, fields = online._generate_hset_keys_for_features(table, None, fv_name_override=name)
        plans.append((name, requested, fields))
    commands = [(key, fields) for _, _, fields in plans for key in redis_keys]
    replies = online._read_hash_fields(config, commands)
    out, at = [], 0
    for name, requested, _ in plans:
        rows = []
        for values in replies[at:at + len(redis_keys)]:
            ts, protos = online._get_features_for_entity(values, name, list(requested))
            rows.append(_row(ts, protos if protos and any(v.WhichOneof("val") for v in protos.values()) else None))
        out.append(rows)
        at += len(redis_keys)
    return out


def _sqlite_read(online, config, tables, entity_keys) -> list[list[Row]] | None:
    """Every view of every key in one sqlite query, or None when `online` is not Feast's sqlite store."""
    if type(online).__name__ != "SqliteOnlineStore" or not hasattr(online, "_get_conn"):
        return None
    try:
        from feast.infra.key_encoding_utils import serialize_entity_key
        from feast.infra.online_stores.sqlite import _quote_id, _table_id
        from feast.protos.feast.types.Value_pb2 import Value
    except ImportError:
        return None
    versioned = config.registry.enable_online_feature_view_versioning
    keys = [serialize_entity_key(k, entity_key_serialization_version=config.entity_key_serialization_version)
            for k in entity_keys]
    marks = ",".join("?" * len(keys))
    sql = " UNION ALL ".join(  # CAST: the raw epoch seconds, without the per-row timestamp converter
        f"SELECT {n}, entity_key, feature_name, value, CAST(event_ts AS INTEGER) FROM "
        f"{_quote_id(_table_id(config.project, table, versioned))} WHERE entity_key IN ({marks})"
        for n, table in enumerate(tables))
    rows = online._get_conn(config).execute(sql, keys * len(tables)).fetchall()
    at = {key: n for n, key in enumerate(keys)}
    found = [[{} for _ in keys] for _ in tables]
    stamps = [[None] * len(keys) for _ in tables]
    for view, key, name, blob, ts in rows:
        value = Value()
        value.ParseFromString(blob)
        k = at[key]
        found[view][k][name] = python_value(value)
        stamps[view][k] = ts
    return [[(datetime.fromtimestamp(ts, tz=timezone.utc), values) if values else (None, None)
             for values, ts in zip(found[view], stamps[view])] for view in range(len(tables))]


def _row(ts, protos) -> Row:
    if not protos:
        return None, None
    return ts, {name: python_value(value) for name, value in protos.items()}


def python_value(value):
    """A Feast value proto as a Python value: None when unset, a tuple for list types."""
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return None
    got = getattr(value, kind)
    return tuple(got.val) if kind.endswith("_list_val") else got


def _entity_key(join_key: str, key: str):
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    return EntityKey(join_keys=[join_key], entity_values=[Value(string_val=str(key))])
