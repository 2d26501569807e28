"""Baseline recommenders that every model in the quality table must beat.

Where this sits: `recsys.evaluation.protocol.evaluate` scores any object exposing
`recommend_batch(user_ids, k) -> DataFrame[user_id, rank, item_id, score, source]` — the same batch interface
as `recsys.serving.Recommender` (the object the service runs) — so a baseline here and the production
recommender are evaluated by identical code. `PopularityRecommender` is also a reference implementation of
that interface (plus `recommend(user_id, k, exclude)` and `update_history(interactions)`).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from recsys.data.schema import ITEM_ID, USER_ID

RECS_COLUMNS = (USER_ID, "rank", ITEM_ID, "score", "source")


def _segment_offsets(lengths: np.ndarray) -> np.ndarray:
    """0..n-1 within each consecutive segment of the given lengths (vectorised ragged arange)."""
    total = int(lengths.sum())
    return np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)


class PopularityRecommender:
    """Recommends the items with the most train interactions, skipping what each user already knows.

    Score = number of interactions with the item in `train_interactions`; ties are broken by item_id
    (ascending), so output is deterministic. `known` (user_id, item_id rows; default: the train interactions)
    are the items treated as already seen and never recommended back to that user. Users without known items
    (cold users) get the plain popularity list. Only items present in train can be recommended.
    """

    source = "popular"

    def __init__(self, train_interactions: pd.DataFrame, known: pd.DataFrame | None = None):
        counts = train_interactions[ITEM_ID].astype(str).value_counts()
        ranked = pd.DataFrame({ITEM_ID: counts.index.to_numpy(dtype=object), "count": counts.to_numpy()})
        ranked = ranked.sort_values(["count", ITEM_ID], ascending=[False, True], kind="mergesort")
        self.item_ids: np.ndarray = ranked[ITEM_ID].to_numpy(dtype=object)
        self.scores: np.ndarray = ranked["count"].to_numpy(dtype=np.float64)
        self._item_pos = pd.Index(self.item_ids)
        self._known = pd.DataFrame({USER_ID: pd.Series(dtype=object), ITEM_ID: pd.Series(dtype=object)})
        self.update_history(train_interactions if known is None else known)

    def update_history(self, interactions: pd.DataFrame) -> None:
        """Add (user_id, item_id) interactions to the known items (what the stream does for the service)."""
        new = interactions[[USER_ID, ITEM_ID]].astype(str)
        known = pd.concat([self._known, new], ignore_index=True).drop_duplicates()
        self._known = known
        pos = self._item_pos.get_indexer(known[ITEM_ID])
        table = pd.DataFrame({USER_ID: known[USER_ID].to_numpy()[pos >= 0], "pos": pos[pos >= 0]})
        table = table.sort_values([USER_ID, "pos"], kind="mergesort")
        owners = table[USER_ID].to_numpy(dtype=object)
        starts = np.r_[0, np.flatnonzero(owners[1:] != owners[:-1]) + 1] if len(owners) else np.zeros(0, int)
        self._known_users = pd.Index(owners[starts], dtype=object)
        self._known_starts = starts.astype(np.int64)
        self._known_counts = np.diff(np.r_[starts, len(owners)]).astype(np.int64)
        self._known_flat = table["pos"].to_numpy(dtype=np.int64)

    def _known_positions(self, user_id: str) -> np.ndarray:
        idx = self._known_users.get_indexer([str(user_id)])[0]
        if idx < 0:
            return np.zeros(0, dtype=np.int64)
        start = self._known_starts[idx]
        return self._known_flat[start : start + self._known_counts[idx]]

    def recommend(self, user_id: str, k: int = 10, exclude: Iterable[str] = ()) -> list[dict]:
        """Top-k popular items for one user, skipping known items and `exclude`."""
        if k < 1:
            raise ValueError(f"k must be positive, got {k!r}")
        skip = set(self.item_ids[self._known_positions(user_id)]) | {str(x) for x in exclude}
        out: list[dict] = []
        for item, score in zip(self.item_ids, self.scores):
            if item in skip:
                continue
            out.append({"item_id": item, "score": float(score), "source": self.source})
            if len(out) == k:
                break
        return out

    def recommend_batch(self, user_ids: Iterable[str], k: int = 10, exclude: pd.DataFrame | None = None
                        ) -> pd.DataFrame:  # fmt: skip
        """Top-k per user as DataFrame[user_id, rank (1-based), item_id, score, source], users in input order.

        `exclude` (user_id, item_id rows) masks more items for this call on top of the known ones, e.g. the
        validation items under the offline protocol (as `Recommender.recommend_batch` does). Vectorised:
        user u only needs the first k + |masked_u| popular items, so at most len(users) * k + |known| +
        |exclude| candidate rows are ever built.
        """
        if isinstance(k, bool) or int(k) != k or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        k = int(k)
        users = pd.unique(np.asarray([str(u) for u in user_ids], dtype=object))
        n_pop = len(self.item_ids)
        kcode = self._known_users.get_indexer(users)
        has = kcode >= 0
        n_known = np.zeros(len(users), dtype=np.int64)
        n_known[has] = self._known_counts[kcode[has]]
        k_grp = np.repeat(np.flatnonzero(has).astype(np.int64), n_known[has])
        k_pos = self._known_flat[
            np.repeat(self._known_starts[kcode[has]], n_known[has]) + _segment_offsets(n_known[has])
        ]
        if exclude is not None and len(exclude):
            e_grp = pd.Index(users).get_indexer(exclude[USER_ID].astype(str))
            e_pos = self._item_pos.get_indexer(exclude[ITEM_ID].astype(str))
            ok = (e_grp >= 0) & (e_pos >= 0)  # a pair masked twice only widens the window: harmless
            k_grp, k_pos = np.r_[k_grp, e_grp[ok]], np.r_[k_pos, e_pos[ok]]
        m = np.bincount(k_grp, minlength=len(users))
        lengths = np.minimum(k + m, n_pop).astype(np.int64)
        grp = np.repeat(np.arange(len(users), dtype=np.int64), lengths)
        cand = _segment_offsets(lengths)
        inside = k_pos < lengths[k_grp]  # known items beyond a user's candidate window never matter
        fresh = np.ones(len(grp), dtype=bool)
        fresh[(np.cumsum(lengths) - lengths)[k_grp[inside]] + k_pos[inside]] = False
        grp, cand = grp[fresh], cand[fresh]
        rank = _segment_offsets(np.bincount(grp, minlength=len(users))) + 1
        sel = rank <= k
        grp, cand, rank = grp[sel], cand[sel], rank[sel]
        return pd.DataFrame(
            {
                USER_ID: users[grp],
                "rank": rank.astype(np.int64),
                ITEM_ID: self.item_ids[cand],
                "score": self.scores[cand],
                "source": np.full(len(grp), self.source, dtype=object),
            },
            columns=list(RECS_COLUMNS),
        )
