"""User histories: the per-user interaction sequences every stage reads.

Candidate sources score from a user's history, ranking features summarise it, the filter stage masks it,
and the streaming consumer appends to it. One object holds it, keyed by user id, with item positions in
the catalogue (not ids) so scoring builds sparse matrices without lookups.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.schema import DEFAULT_EVENT_WEIGHTS, EVENT_TYPE, ITEM_ID, TIMESTAMP, USER_ID


@dataclass
class Catalog:
    """The item catalogue: ids in a fixed order (positions used by every matrix) and their attributes."""

    item_ids: np.ndarray
    attributes: pd.DataFrame  # indexed by position, columns = item attributes
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids, dtype=object)
        self.index = {item: pos for pos, item in enumerate(self.item_ids)}

    @classmethod
    def from_tables(cls, items: pd.DataFrame, *interactions: pd.DataFrame) -> Catalog:
        """Items table rows first (in table order), then any item seen only in interactions."""
        ids = list(items[ITEM_ID].astype(str)) if len(items) else []
        known = set(ids)
        for frame in interactions:
            extra = pd.unique(frame[ITEM_ID].astype(str))
            ids.extend(i for i in extra if i not in known)
            known.update(extra)
        attrs = items.astype({ITEM_ID: str}).set_index(ITEM_ID).reindex(ids).reset_index(drop=True)
        return cls(np.asarray(ids, dtype=object), attrs)

    def __len__(self) -> int:
        return len(self.item_ids)

    def positions(self, item_ids) -> np.ndarray:
        """Catalogue positions of ids; unknown ids map to -1."""
        get = self.index.get
        return np.fromiter((get(str(i), -1) for i in item_ids), dtype=np.int64, count=len(item_ids))


class History:
    """Chronological (item position, timestamp, weight) sequences per user."""

    def __init__(self, catalog: Catalog, event_weights: dict[str, float] | None = None):
        self.catalog = catalog
        self.event_weights = dict(event_weights or DEFAULT_EVENT_WEIGHTS)
        self._items: dict[str, np.ndarray] = {}
        self._ts: dict[str, np.ndarray] = {}  # seconds since epoch, float64
        self._w: dict[str, np.ndarray] = {}

    @classmethod
    def from_interactions(cls, catalog: Catalog, interactions: pd.DataFrame, event_weights=None) -> History:
        history = cls(catalog, event_weights)
        history.add(interactions)
        return history

    def add(self, interactions: pd.DataFrame) -> None:
        """Append interactions (any order); items outside the catalogue are ignored (cold items)."""
        if interactions.empty:
            return
        pos = self.catalog.positions(interactions[ITEM_ID].to_numpy())
        ts = pd.to_datetime(interactions[TIMESTAMP], utc=True).astype("int64").to_numpy() / 1e9
        weights = interactions[EVENT_TYPE].map(self.event_weights).fillna(1.0).to_numpy(dtype=np.float64)
        frame = pd.DataFrame({"u": interactions[USER_ID].astype(str).to_numpy(), "i": pos, "t": ts, "w": weights})
        frame = frame[frame.i >= 0].sort_values(["u", "t"], kind="stable")
        if frame.empty:  # only items outside the catalogue: nothing to add
            return
        users = frame.u.to_numpy()
        cuts = np.flatnonzero(users[1:] != users[:-1]) + 1
        bounds = zip(np.r_[0, cuts], np.r_[cuts, len(frame)])
        i, t, w = frame.i.to_numpy(), frame.t.to_numpy(), frame.w.to_numpy()
        for start, end in bounds:
            user = users[start]
            if user in self._items:  # merge, keeping time order
                items = np.concatenate([self._items[user], i[start:end]])
                times = np.concatenate([self._ts[user], t[start:end]])
                order = np.argsort(times, kind="stable")
                self._items[user], self._ts[user] = items[order], times[order]
                self._w[user] = np.concatenate([self._w[user], w[start:end]])[order]
            else:
                self._items[user], self._ts[user], self._w[user] = i[start:end], t[start:end], w[start:end]

    def __contains__(self, user_id: str) -> bool:
        return user_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    @property
    def users(self) -> list[str]:
        return list(self._items)

    def items(self, user_id: str) -> np.ndarray:
        return self._items.get(user_id, np.empty(0, dtype=np.int64))

    def timestamps(self, user_id: str) -> np.ndarray:
        return self._ts.get(user_id, np.empty(0))

    def last_time(self, user_ids) -> np.ndarray:
        """Time of each user's latest interaction (NaN for users without history)."""
        return np.array([self._ts[u][-1] if u in self._ts else np.nan for u in user_ids])

    def matrix(self, user_ids, decay: float | None = None, use_weights: bool = False) -> sp.csr_matrix:
        """Users x items matrix of the history. With `decay`, the k-th most recent interaction counts
        exp(-k / decay): order matters more than clock time in sequential consumption. Repeats of an
        item add up."""
        indptr, indices, data = [0], [], []
        for user in user_ids:
            items = self._items.get(user)
            if items is None:
                indptr.append(indptr[-1])
                continue
            n = len(items)
            vals = np.ones(n) if decay is None else np.exp(-np.arange(n - 1, -1, -1) / decay)
            if use_weights:
                vals = vals * self._w[user]
            indices.append(items)
            data.append(vals)
            indptr.append(indptr[-1] + n)
        shape = (len(user_ids), len(self.catalog))
        if not indices:
            return sp.csr_matrix(shape)
        m = sp.csr_matrix((np.concatenate(data), np.concatenate(indices), np.asarray(indptr)), shape=shape)
        m.sum_duplicates()
        return m

    def to_frame(self) -> pd.DataFrame:
        """Flat (user_id, item_pos, t, w) rows: how the bundle stores the history."""
        users = self.users
        lengths = [len(self._items[u]) for u in users]
        empty = np.empty(0)
        return pd.DataFrame({
            "user_id": np.repeat(np.asarray(users, dtype=object), lengths),
            "item_pos": np.concatenate([self._items[u] for u in users]) if users else empty.astype(np.int64),
            "t": np.concatenate([self._ts[u] for u in users]) if users else empty,
            "w": np.concatenate([self._w[u] for u in users]) if users else empty,
        })

    @classmethod
    def from_frame(cls, catalog: Catalog, frame: pd.DataFrame, event_weights=None) -> History:
        history = cls(catalog, event_weights)
        for user, block in frame.groupby("user_id", sort=False):
            history._items[user] = block.item_pos.to_numpy(np.int64)
            history._ts[user] = block.t.to_numpy(np.float64)
            history._w[user] = block.w.to_numpy(np.float64)
        return history

    def all_events(self) -> tuple[np.ndarray, np.ndarray]:
        """(item positions, times) of every interaction, for item statistics."""
        users = self.users
        if not users:
            return np.empty(0, np.int64), np.empty(0)
        return np.concatenate([self._items[u] for u in users]), np.concatenate([self._ts[u] for u in users])
