"""Where the ranking stage gets store features: the provider interface and its point-in-time implementation.

RankingFeatures (recsys.ranking.features) asks a provider for the user-level rows of the users it ranks for
and the item-level rows of their candidates, each as of a reference time (the user's latest interaction):

- `PointInTimeFeatures` (here): Feast's offline store with a point-in-time join, for training sets and
  offline evaluation: a row stamped after the reference time is never returned;
- `OnlineFeatures` (recsys.features.online): the Feast online store, for serving: one lookup per request
  for the user, item rows from an in-memory table refreshed on a schedule, with a freshness check.

Both return the columns the spec names (NaN / None where an entity has no row), so the ranker sees the same
features in training and serving. A provider describes how to re-create its offline twin (`describe`), which
the model bundle records; serving swaps in the online one (recsys.features.online.attach_online_features).
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.features.definitions import (
    EVENT_TIMESTAMP,
    ITEM_KEY,
    ITEM_POPULARITY,
    SNAPSHOT_SECONDS,
    USER_ACTIVITY,
    USER_AFFINITY,
    USER_KEY,
    FeatureSpec,
    features_dir,
)

log = logging.getLogger(__name__)
USER_SERVICE, ITEM_SERVICE = "user_ranking_daily_v1", "item_ranking_daily_v1"  # feature_repo/feature_services.py
USER_VIEWS, ITEM_VIEWS = (USER_ACTIVITY, USER_AFFINITY), (ITEM_POPULARITY,)


class StoreFeatures(ABC):
    """Store features for ranking. Rows come back in the order asked, with `user_columns` / `item_columns`."""

    spec: FeatureSpec

    @property
    def user_columns(self) -> list[str]:
        return [name for view in USER_VIEWS for name in self.spec.names(view)]

    @property
    def user_columns_scalar(self) -> list[str]:
        """The user columns a ranker reads as they are (the affinity lists are combined per candidate)."""
        return self.spec.names(USER_ACTIVITY)

    @property
    def item_columns(self) -> list[str]:
        return [name for view in ITEM_VIEWS for name in self.spec.names(view)]

    @abstractmethod
    def user_features(self, user_ids, ref_times: np.ndarray) -> pd.DataFrame:
        """One row per user id, as of ref_times (seconds since the epoch, one per user)."""

    @abstractmethod
    def item_features(self, item_ids, ref_times: np.ndarray) -> pd.DataFrame:
        """One row per (item id, reference time) pair."""

    def describe(self) -> dict | None:
        """How to re-create the offline provider (stored in the model bundle); None: cannot be."""
        return None


def seconds_to_timestamps(seconds: np.ndarray) -> pd.DatetimeIndex:
    """UTC timestamps at microsecond precision (the store's), rounded down: never later than asked."""
    micros = np.floor(np.asarray(seconds, dtype=np.float64) * 1e6).astype(np.int64)
    return pd.DatetimeIndex(micros.astype("datetime64[us]")).tz_localize("UTC")


class FeastRepoFeatures(StoreFeatures):
    """Store features read through one Feast client on a repo (`repo_path`, `fs_yaml`), opened on first use."""

    repo_path: str
    fs_yaml: str
    _store = None
    _pulled = False

    def _pull(self) -> None:
        """The store's files as the features pipeline left them (recsys.features.store.pull_state): a step
        that loads this provider may run in a fresh pod with no copy of its own. Once per object and process."""
        if not self._pulled:
            from recsys.features.store import pull_state

            pull_state(self.repo_path, self.fs_yaml)
            self._pulled = True

    @property
    def store(self):
        if self._store is None:
            from recsys.features.store import open_store

            self._pull()
            self._store = open_store(self.repo_path, self.fs_yaml)
        return self._store

    def describe(self) -> dict:
        """A saved model re-opens the offline twin (point-in-time), never the online store."""
        return {"kind": "point_in_time", "repo_path": self.repo_path, "fs_yaml": self.fs_yaml}


class PointInTimeFeatures(FeastRepoFeatures):
    """Feast `get_historical_features` over the repo's offline store (the batch job's Parquet).

    Feast joins, per entity row (id, t), the latest feature row with event_timestamp <= t within the view's
    TTL. Daily rows are stamped at UTC midnights, so every t inside a day (T, T + 1 day) gets the same row:
    item rows are asked once per (item, day) rather than once per candidate."""

    def __init__(self, repo_path: str | Path = "feature_repo", fs_yaml: str = "feature_store.yaml",
                 spec: FeatureSpec | None = None):
        self.repo_path, self.fs_yaml = str(repo_path), fs_yaml
        self._store, self._pulled = None, False
        if spec is None:
            self._pull()
        self.spec = spec or FeatureSpec.read(features_dir(repo_path))

    def __getstate__(self):  # the Feast client and the local copy stay behind when pickled between steps
        return {**self.__dict__, "_store": None, "_pulled": False}

    def _join(self, key: str, ids, seconds: np.ndarray, service: str, columns: list[str]) -> pd.DataFrame:
        entity = pd.DataFrame({key: np.asarray(ids, dtype=object).astype(str),
                               EVENT_TIMESTAMP: seconds_to_timestamps(seconds), "row_id": np.arange(len(ids))})
        if entity.empty:
            return pd.DataFrame(columns=columns)
        joined = self.store.get_historical_features(entity, features=self.store.get_feature_service(service)).to_df()
        joined = joined.set_index("row_id").reindex(np.arange(len(ids)))
        missing = set(columns) - set(joined.columns)
        if missing:
            raise KeyError(f"the feature store lacks {sorted(missing)}: re-run the features pipeline with the "
                           "spec the ranker was trained on")
        return joined[columns].reset_index(drop=True)

    def user_features(self, user_ids, ref_times: np.ndarray) -> pd.DataFrame:
        return self._join(USER_KEY, list(user_ids), np.asarray(ref_times, np.float64), USER_SERVICE, self.user_columns)

    def item_features(self, item_ids, ref_times: np.ndarray) -> pd.DataFrame:
        ref = np.asarray(ref_times, np.float64)
        day_start = np.floor(ref / SNAPSHOT_SECONDS) * SNAPSHOT_SECONDS
        canonical = np.where(ref == day_start, ref, day_start + 1.0)  # any time inside a day joins alike
        pairs = pd.DataFrame({"i": np.asarray(item_ids, dtype=object).astype(str), "t": canonical})
        unique = pairs.drop_duplicates(ignore_index=True)
        rows = self._join(ITEM_KEY, unique.i.to_numpy(), unique.t.to_numpy(), ITEM_SERVICE, self.item_columns)
        where = pd.MultiIndex.from_frame(unique).get_indexer(pd.MultiIndex.from_frame(pairs))
        return rows.iloc[where].reset_index(drop=True)


def provider_from_description(description: dict | None, spec: FeatureSpec) -> StoreFeatures | None:
    """The offline provider a saved model recorded (None if it used no store features), over the spec it
    was trained with. Nothing is opened until the first join, so loading a model needs no feature store."""
    if not description:
        return None
    if description.get("kind") != "point_in_time":
        raise ValueError(f"unknown store feature provider {description!r}")
    return PointInTimeFeatures(description["repo_path"], description.get("fs_yaml", "feature_store.yaml"), spec)
