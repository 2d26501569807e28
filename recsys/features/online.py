"""Store features at serving time: the Feast online store, read once per request, with a freshness check.

The service attaches this provider to a loaded Recommender (`attach_online_features`); from then on the
ranking stage's user-level features come from one key lookup per request (all the user's views at once,
recsys.features.lookup; with Kafka the same lookup also brings the user's real-time events: the serving
state passes the rows in, `pin`) and item-level features from an in-memory table of every catalogue item,
refreshed from the online store on a schedule in a background thread, so a request never looks up
candidates one by one. A recommender without store features needs none of this (nothing to attach).

User rows kept. With `user_refresh_seconds` > 0 (the service: 60) a user's rows are read at most that often
and kept in between (least recently used out beyond MAX_KEPT_USERS): they change when the daily job is
materialized, so a request of a user seen within the minute reads no daily rows at all; with Kafka the
state's one lookup per request then brings only the user's real-time row (recsys/serving/state.py asks
`needs`). 0 (the default): read on every request.

Freshness. Feast does not apply a feature view's TTL to online reads (feast #6821): a user idle for months
keeps their last row. The point-in-time join used in training returns nothing for such a row, so this
provider does the same: a row older than `max_age` is treated as missing, and counted (`status()`).
`clock="wall"` measures age against the wall clock (production); `clock="snapshot"` against the newest
snapshot read from the store so far (the item table is read first), for replaying a historical dataset
whose rows are all old by the wall clock.

Failures never fail a request: a read that raises (store down, locked) yields missing features, counted as
errors; `ping()` is the cheap health check the service's /readyz calls.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
import pandas as pd

from recsys.features.definitions import ITEM_KEY, USER_KEY, FeatureSpec
from recsys.features.lookup import Health, KeyLookup
from recsys.features.provider import ITEM_VIEWS, USER_VIEWS, FeastRepoFeatures

log = logging.getLogger(__name__)
DEFAULT_MAX_AGE = timedelta(hours=36)  # one daily snapshot period + 12 h for the daily job to land
MAX_KEPT_USERS = 50_000  # user rows kept between reads (~1 KB each beside the blobs the ranked lists' stamps hold)
CLOCKS = ("wall", "snapshot")


class OnlineFeatures(FeastRepoFeatures):
    user_views = USER_VIEWS  # what a request's lookup must bring for `pin`

    def __init__(self, spec: FeatureSpec, repo_path: str = "feature_repo", fs_yaml: str = "feature_store.yaml",
                 item_ids=None, max_age: timedelta | float = DEFAULT_MAX_AGE, clock: str = "wall",
                 item_refresh_seconds: float = 300.0, retry_after: float = 5.0, store=None,
                 user_refresh_seconds: float = 0.0):
        if clock not in CLOCKS:
            raise ValueError(f"unknown freshness clock {clock!r}; choose one of {list(CLOCKS)}")
        self.spec, self.repo_path, self.fs_yaml, self.clock = spec, str(repo_path), fs_yaml, clock
        self.max_age = max_age.total_seconds() if isinstance(max_age, timedelta) else float(max_age)
        self.item_refresh_seconds = float(item_refresh_seconds)
        self.user_refresh_seconds = float(user_refresh_seconds)
        self.retry_after = float(retry_after)
        self._kept: OrderedDict[str, tuple[float, dict]] = OrderedDict()  # user -> (read at, {view: row})
        self._kept_lock = threading.Lock()
        # the catalogue's ids (a callable: the catalogue may grow while serving); none = no item table
        self._item_ids = item_ids if callable(item_ids) else (lambda ids=list(item_ids or ()): ids)
        self._store = store
        self.counts: Counter = Counter()
        # One pause after a failure for both lookups: requests skip the store until then (no one waits on it).
        self.health = Health(retry_after, self.counts)
        self.users = KeyLookup(USER_VIEWS, USER_KEY, lambda: self.store, self.health)
        self._item_lookup = KeyLookup(ITEM_VIEWS, ITEM_KEY, lambda: self.store, self.health)
        self._refreshing = threading.Lock()
        self._items = pd.DataFrame(columns=self.item_columns)
        self._items_loaded_at = 0.0
        self._snapshot_now = 0.0  # the newest snapshot read so far (the "snapshot" clock)
        self._local = threading.local()  # rows `pin`ned for the calling thread's request
        self._names = {view: spec.names(view) for view in (*USER_VIEWS, *ITEM_VIEWS)}
        self._checked: set[str] = set()  # views whose registered schema holds the spec's columns
        self._count_keys = {view: (f"{view}.missing", f"{view}.stale", f"{view}.fresh") for view in self._names}

    @property
    def last_error(self) -> str | None:
        return self.health.last_error

    def _now(self) -> float:
        return time.time() if self.clock == "wall" else self._snapshot_now

    def _fresh(self, rows: list[dict], views) -> list[dict]:
        """Per entity {view: its row's Values, or None where the row is missing or older than `max_age`}
        (counted per view: fresh, stale, missing). Looks at the row times only: nothing is parsed."""
        counts = self.counts
        if self.clock == "snapshot":  # the newest snapshot seen is "now"
            stamps = [ts.timestamp() for row in rows for ts, _ in row.values() if ts is not None]
            if stamps:
                self._snapshot_now = max(self._snapshot_now, max(stamps))
        now, out = self._now(), [{} for _ in rows]
        for view in views:
            missing, stale, fresh = self._count_keys[view]
            for row, kept in zip(rows, out):
                ts, got = row.get(view, (None, None))
                if got is None:
                    counts[missing] += 1
                    kept[view] = None
                elif now - ts.timestamp() > self.max_age:
                    counts[stale] += 1
                    kept[view] = None
                else:
                    counts[fresh] += 1
                    kept[view] = got
        return out

    def _columns(self, fresh: dict) -> dict:
        """{column: value} of one entity's fresh rows (`_fresh`), None where a view's row is not fresh (or a
        feature of it was stored empty)."""
        values = {}
        for view, got in fresh.items():
            names = self._names[view]
            if got is None:
                values.update(dict.fromkeys(names))
                continue
            if view not in self._checked:
                self._check(view)
            values.update((c, got.get(c)) for c in names)
        return values

    def _check(self, view: str) -> None:
        """The registered view must hold every column the ranker was trained on (a repo applied with another
        spec would silently serve missing features)."""
        registered = {f.name for f in self.store.get_feature_view(view).features}
        missing = [c for c in self._names[view] if c not in registered]
        if missing:
            raise KeyError(f"the online store lacks {missing}: re-apply feature_repo with the spec the ranker "
                           "was trained on (python run.py --pipeline features)")
        self._checked.add(view)

    # ---- the request's user rows ----
    def needs(self, user_ids) -> bool:
        """Whether rows of these users must be read now (not kept, or kept for `user_refresh_seconds`)."""
        if self.user_refresh_seconds <= 0:
            return True
        now, kept, limit = time.monotonic(), self._kept, self.user_refresh_seconds
        return any((hit := kept.get(u)) is None or now - hit[0] > limit for u in user_ids)

    def _user_rows(self, ids: list[str], rows: list[dict] | None) -> list[dict]:
        """Each user's {view: row}: from `rows` when the request's lookup brought them, else kept, else read
        (and kept). A failed read answers missing rows, kept for no one."""
        if rows is None or not all(USER_VIEWS[0] in row for row in rows):
            if self.needs(ids):
                rows = self.users.fetch(ids)
                if rows is None:
                    return [dict.fromkeys(USER_VIEWS, (None, None)) for _ in ids]
            else:
                with self._kept_lock:
                    hits = [self._kept.get(u) for u in ids]
                if all(hits):
                    return [hit[1] for hit in hits]
                rows = self.users.read(ids)  # evicted meanwhile
        if self.user_refresh_seconds > 0:
            now = time.monotonic()
            with self._kept_lock:
                for user, row in zip(ids, rows):
                    self._kept[user] = (now, {view: row[view] for view in USER_VIEWS})
                    self._kept.move_to_end(user)
                while len(self._kept) > MAX_KEPT_USERS:
                    self._kept.popitem(last=False)
        return rows

    def pin(self, user_ids, rows: list[dict] | None = None) -> list[tuple]:
        """Take the users' rows for every `user_features` call of this thread until `unpin`: `rows` from the
        request's one lookup (per user {view: (time, Values)}, recsys.features.lookup), or kept, or read here.
        Returns
        each user's stamp: the stored bytes of each fresh row (None: missing or stale) and the item table's
        load time, what a ranked list computed from them depends on (recsys/serving/lists.py). Nothing is
        parsed until a list is computed from them."""
        ids = [str(u) for u in user_ids]
        if not self._items_loaded_at:
            self.refresh_items()  # sets the snapshot clock before the first user read
        fresh = self._fresh(self._user_rows(ids, rows), USER_VIEWS)
        self._local.rows = dict(zip(ids, fresh))
        loaded = self._items_loaded_at
        return [(loaded, tuple(None if row[v] is None else row[v].blobs for v in USER_VIEWS)) for row in fresh]

    def unpin(self) -> None:
        self._local.rows = None

    @contextmanager
    def pinned(self, user_ids):
        """`pin` for the block (nested: the outer block's rows stand)."""
        if getattr(self._local, "rows", None) is not None:
            yield
            return
        self.pin(user_ids)
        try:
            yield
        finally:
            self.unpin()

    # ---- StoreFeatures ----
    def user_features(self, user_ids, ref_times=None) -> pd.DataFrame:
        """The users' latest rows (ref_times are ignored: online is "now"): the pinned ones, else one lookup."""
        ids = [str(u) for u in user_ids]
        pinned = getattr(self._local, "rows", None)
        if pinned is not None and all(i in pinned for i in ids):
            fresh = [pinned[i] for i in ids]
        else:
            if not self._items_loaded_at:
                self.refresh_items()
            fresh = self._fresh(self._user_rows(ids, None), USER_VIEWS)
        values = [self._columns(row) for row in fresh]
        return pd.DataFrame({c: [row[c] for row in values] for c in self.user_columns}, index=range(len(ids)))

    def item_features(self, item_ids, ref_times=None) -> pd.DataFrame:
        """From the in-memory table; a refresh starts in the background once it is older than the interval."""
        if not self._items_loaded_at:
            self.refresh_items()
        elif time.time() - self._items_loaded_at > self.item_refresh_seconds:
            self.refresh_items_async()
        table = self._items
        return table.reindex(pd.Index(np.asarray(item_ids, dtype=object).astype(str))).reset_index(drop=True)

    # ---- the item table ----
    def refresh_items(self) -> int:
        """Reload every catalogue item's row (one lookup); returns the number of fresh rows."""
        with self._refreshing:
            ids = [str(i) for i in self._item_ids()]
            if not ids:
                self._items, self._items_loaded_at = pd.DataFrame(columns=self.item_columns), time.time()
                return 0
            rows = self._item_lookup.fetch(ids)
            if rows is None:
                return 0  # keep serving the previous table
            values = [self._columns(row) for row in self._fresh(rows, ITEM_VIEWS)]
            frame = pd.DataFrame({c: [row.get(c) for row in values] for c in self.item_columns},
                                 index=pd.Index(ids))
            self._items, self._items_loaded_at = frame.apply(pd.to_numeric, errors="coerce"), time.time()
            self.counts["item_refreshes"] += 1
            return int(frame.notna().any(axis=1).sum())

    def refresh_items_async(self) -> bool:
        """Start a refresh in a daemon thread unless one is running; requests keep the current table."""
        if self._refreshing.locked():
            return False
        threading.Thread(target=self.refresh_items, name="online-item-features", daemon=True).start()
        return True

    # ---- health ----
    def ping(self, timeout: float = 2.0) -> bool:
        """Whether the online store answers a one-key lookup within `timeout` seconds; never raises. A
        success also ends the pause after a failure; a slow probe finishes in the background."""
        answer = {}

        def probe():
            answer["ok"] = self.users.fetch(["__ping__"], probe=True) is not None

        thread = threading.Thread(target=probe, name="online-store-ping", daemon=True)
        thread.start()
        thread.join(timeout)
        if thread.is_alive():
            self.counts["ping_timeouts"] += 1
        return bool(answer.get("ok"))

    def status(self) -> dict:
        return {"online_store": self._store.config.online_store.type if self._store is not None else None,
                "clock": self.clock, "max_age_seconds": self.max_age,
                "item_table_age_seconds":
                    round(time.time() - self._items_loaded_at, 1) if self._items_loaded_at else None,
                "counts": dict(self.counts), "last_error": self.last_error}


def attach_online_features(recommender, repo_path: str = "feature_repo", fs_yaml: str = "feature_store.yaml",
                           max_age: timedelta | float = DEFAULT_MAX_AGE, clock: str = "wall",
                           item_refresh_seconds: float = 300.0, user_refresh_seconds: float = 0.0
                           ) -> OnlineFeatures | None:
    """Serve `recommender`'s store features from the online store. Returns the provider (for /readyz:
    `ping()`, and `status()`), or None when the recommender's ranker uses no store features."""
    ranking = getattr(recommender, "ranking", None)
    features = getattr(ranking, "features", None)
    trained = getattr(features, "store", None)
    if trained is None:
        return None
    online = OnlineFeatures(trained.spec, repo_path, fs_yaml, item_ids=lambda: recommender.catalog.item_ids,
                            max_age=max_age, clock=clock, item_refresh_seconds=item_refresh_seconds,
                            user_refresh_seconds=user_refresh_seconds)
    online.refresh_items()
    features.store = online
    return online
