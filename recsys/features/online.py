"""Store features at serving time: the Feast online store, read once per request, with a freshness check.

The service attaches this provider to a loaded Recommender (`attach_online_features`); from then on the
ranking stage's user-level features come from one `get_online_features` call per request (all the user's
views in one lookup) and item-level features from an in-memory table of every catalogue item, refreshed
from the online store on a schedule in a background thread, so a request never looks up candidates one by
one. A recommender without store features needs none of this (nothing to attach).

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
from collections import Counter
from contextlib import contextmanager
from datetime import timedelta

import numpy as np
import pandas as pd

from recsys.features.definitions import ITEM_KEY, USER_KEY, FeatureSpec
from recsys.features.provider import ITEM_SERVICE, ITEM_VIEWS, USER_SERVICE, USER_VIEWS, FeastRepoFeatures

log = logging.getLogger(__name__)
DEFAULT_MAX_AGE = timedelta(hours=36)  # one daily snapshot period + 12 h for the daily job to land
CLOCKS = ("wall", "snapshot")


class OnlineFeatures(FeastRepoFeatures):
    def __init__(self, spec: FeatureSpec, repo_path: str = "feature_repo", fs_yaml: str = "feature_store.yaml",
                 item_ids=None, max_age: timedelta | float = DEFAULT_MAX_AGE, clock: str = "wall",
                 item_refresh_seconds: float = 300.0, retry_after: float = 5.0, store=None):
        if clock not in CLOCKS:
            raise ValueError(f"unknown freshness clock {clock!r}; choose one of {list(CLOCKS)}")
        self.spec, self.repo_path, self.fs_yaml, self.clock = spec, str(repo_path), fs_yaml, clock
        self.max_age = max_age.total_seconds() if isinstance(max_age, timedelta) else float(max_age)
        self.item_refresh_seconds = float(item_refresh_seconds)
        self.retry_after = float(retry_after)
        self._down_until = 0.0  # after a failed read, requests skip the store until then (no one waits on it)
        # the catalogue's ids (a callable: the catalogue may grow while serving); none = no item table
        self._item_ids = item_ids if callable(item_ids) else (lambda ids=list(item_ids or ()): ids)
        self._store, self._services = store, {}
        self._lock = threading.Lock()  # one Feast client; sqlite shares one connection across threads
        self._refreshing = threading.Lock()
        self._items = pd.DataFrame(columns=self.item_columns)
        self._items_loaded_at = 0.0
        self._snapshot_now = 0.0  # the newest snapshot read so far (the "snapshot" clock)
        self._local = threading.local()  # rows `pinned` for the calling thread's request
        self.counts: Counter = Counter()
        self.last_error: str | None = None

    # ---- the Feast client (`store`, `describe`: FeastRepoFeatures) ----
    def _service(self, name: str):
        """The feature service, looked up once (a registry lookup costs more than the online read)."""
        if name not in self._services:
            self._services[name] = self.store.get_feature_service(name)
        return self._services[name]

    def _read(self, service: str, key: str, ids: list[str], probe: bool = False) -> dict | None:
        if not probe and time.time() < self._down_until:
            self.counts["skipped"] += 1  # a client may retry for seconds on a dead store: do not wait on it
            return None
        try:
            with self._lock:
                response = self.store.get_online_features(features=self._service(service),
                                                          entity_rows=[{key: i} for i in ids])
            self._down_until = 0.0
            return response.to_dict(include_event_timestamps=True)
        except Exception as error:  # a failed read degrades to missing features, never a failed request
            self.counts["errors"] += 1
            self.last_error = f"{type(error).__name__}: {error}"
            self._down_until = time.time() + self.retry_after
            log.warning("online feature read failed (%s): features treated as missing for %.0f s",
                        self.last_error, self.retry_after)
            return None

    def _now(self) -> float:
        return time.time() if self.clock == "wall" else self._snapshot_now

    def _frame(self, raw: dict | None, views, n: int) -> pd.DataFrame:
        """Feast's response as rows, with each view's columns blanked where its row is missing or stale."""
        columns = {}
        now = self._now()
        for view in views:
            names = self.spec.names(view)
            if raw is None:
                columns.update({c: [None] * n for c in names})
                continue
            missing = [c for c in names if c not in raw]
            if missing:
                raise KeyError(f"the online store lacks {missing}: re-apply feature_repo with the spec the ranker "
                               "was trained on (python run.py --pipeline features)")
            stamps = np.asarray(raw[f"{names[0]}__ts"], dtype=np.float64)
            present = stamps > 0
            if self.clock == "snapshot" and present.any():  # the newest snapshot seen is "now"
                self._snapshot_now = now = max(now, float(stamps.max()))
            fresh = present & (now - stamps <= self.max_age)
            self.counts[f"{view}.missing"] += int((~present).sum())
            self.counts[f"{view}.stale"] += int((present & ~fresh).sum())
            self.counts[f"{view}.fresh"] += int(fresh.sum())
            keep = fresh.tolist()
            columns.update({c: [v if k else None for v, k in zip(raw[c], keep)] for c in names})
        return pd.DataFrame(columns, index=range(n))

    # ---- StoreFeatures ----
    def user_features(self, user_ids, ref_times=None) -> pd.DataFrame:
        """The users' latest rows (ref_times are ignored: online is "now"); one online lookup for all views,
        none while the calling thread holds these users' rows `pinned`."""
        ids = [str(u) for u in user_ids]
        pinned = getattr(self._local, "rows", None)
        if pinned is not None and all(i in pinned.index for i in ids):
            return pinned.loc[ids].reset_index(drop=True)
        if not self._items_loaded_at:
            self.refresh_items()  # sets the snapshot clock before the first user read
        return self._frame(self._read(USER_SERVICE, USER_KEY, ids), USER_VIEWS, len(ids))

    @contextmanager
    def pinned(self, user_ids):
        """Read the users' rows once and serve them to every `user_features` call of this thread inside the
        block: a request that checks its cached ranked list against the user's row (recsys.serving.ranked)
        and then ranks from that row makes one lookup, and ranks from exactly the row it checked."""
        if getattr(self._local, "rows", None) is not None:  # nested: the outer block's rows stand
            yield
            return
        ids = [str(u) for u in user_ids]
        frame = self.user_features(ids)
        frame.index = pd.Index(ids)
        self._local.rows = frame[~frame.index.duplicated()]
        try:
            yield
        finally:
            self._local.rows = None

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
            raw = self._read(ITEM_SERVICE, ITEM_KEY, ids) if ids else {}
            if raw is None:  # keep serving the previous table
                return 0
            frame = self._frame(raw, ITEM_VIEWS, len(ids)) if ids else pd.DataFrame(columns=self.item_columns)
            frame.index = pd.Index(ids)
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
            answer["ok"] = self._read(USER_SERVICE, USER_KEY, ["__ping__"], probe=True) is not None

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
                           item_refresh_seconds: float = 300.0) -> OnlineFeatures | None:
    """Serve `recommender`'s store features from the online store. Returns the provider (for /readyz:
    `ping()`, and `status()`), or None when the recommender's ranker uses no store features."""
    ranking = getattr(recommender, "ranking", None)
    features = getattr(ranking, "features", None)
    trained = getattr(features, "store", None)
    if trained is None:
        return None
    online = OnlineFeatures(trained.spec, repo_path, fs_yaml, item_ids=lambda: recommender.catalog.item_ids,
                            max_age=max_age, clock=clock, item_refresh_seconds=item_refresh_seconds)
    online.refresh_items()
    features.store = online
    return online
