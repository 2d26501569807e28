"""The rank stage as one object: feature builder + learning-to-rank model.

`build_training_set` turns candidates for users with known later interactions into query groups (one per
user) whose labels are those later interactions; `RankingModel.score` ranks candidates at serving time with
exactly the same feature code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.features.history import Catalog, History
from recsys.ranking.features import RankingFeatures
from recsys.ranking.rankers import Ranker
from recsys.retrieval.candidates import Candidates


def candidate_labels(cands: Candidates, catalog: Catalog, target: pd.DataFrame,
                     event_weights: dict[str, float] | None = None) -> np.ndarray:
    """Label of each valid candidate: 0 if the user did not interact with it in `target`, otherwise the
    strongest event's weight rounded to an integer grade (1 for plain implicit feedback)."""
    pos = catalog.positions(target["item_id"].to_numpy())
    grade = target["event_type"].map(event_weights or {}).fillna(1.0).clip(lower=1).round().astype(int)
    table = pd.DataFrame({"u": target["user_id"].astype(str).to_numpy(), "i": pos, "g": grade.to_numpy()})
    best = table[table.i >= 0].groupby(["u", "i"]).g.max()
    u_idx, c_idx = np.nonzero(cands.valid)
    keys = pd.MultiIndex.from_arrays([np.asarray(cands.user_ids, dtype=object)[u_idx],
                                      cands.positions[u_idx, c_idx]])
    return best.reindex(keys).fillna(0).astype(int).to_numpy()


class RankingModel:
    def __init__(self, features: RankingFeatures, ranker: Ranker):
        self.features, self.ranker = features, ranker

    def score(self, cands: Candidates, history: History, ref_time=None) -> np.ndarray:
        """Scores shaped like cands.positions (-inf at padding)."""
        X = self.features.transform(cands, history, ref_time)
        out = np.full(cands.positions.shape, -np.inf)
        if len(X):
            out[cands.valid] = self.ranker.predict(X)
        return out

    def save(self, path: Path) -> None:
        path = Path(path)
        self.features.save(path / "features")
        self.ranker.save(path / "model")

    @classmethod
    def load(cls, path: Path, catalog: Catalog) -> RankingModel:
        path = Path(path)
        return cls(RankingFeatures.load(path / "features", catalog), Ranker.load(path / "model"))


def group_sizes(cands: Candidates) -> np.ndarray:
    return cands.valid.sum(axis=1)
