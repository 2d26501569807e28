"""Candidate generation: the union of every source's top items, with every source's score at each.

This is the ranker's input and its ceiling: an item no source proposes can never be recommended, which is
why `candidate_recall` reports recall@N per source and for the union.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.features.history import Catalog, History
from recsys.retrieval.sources import CandidateSource


@dataclass
class Candidates:
    """Per user a padded row of catalogue positions (-1 = padding), a bit mask of the sources that proposed
    each (bit k = source k; the lowest set bit is its origin) and each source's score at each candidate
    (NaN where it has none)."""

    user_ids: list[str]
    positions: np.ndarray  # [n_users, n_max] int64
    proposed_by: np.ndarray  # [n_users, n_max] int32 bit mask
    scores: dict[str, np.ndarray]  # source name -> [n_users, n_max] float32

    @property
    def valid(self) -> np.ndarray:
        return self.positions >= 0


class CandidateGenerator:
    """Fits its sources on a history and proposes candidates for users of any history."""

    def __init__(self, catalog: Catalog, sources: list[CandidateSource], n_per_source: dict[str, int]):
        self.catalog, self.sources, self.n_per_source = catalog, sources, dict(n_per_source)

    def fit(self, history: History) -> CandidateGenerator:
        for source in self.sources:
            source.fit(history)
        return self

    @property
    def score_names(self) -> list[str]:
        """Names of the score columns `generate` returns: each source, then each source's extra views."""
        names = [s.name for s in self.sources]
        for s in self.sources:
            names += [f"{s.name}_{v}" for v in getattr(s, "view_decays", {})]
        return names

    def source(self, name: str) -> CandidateSource:
        return next(s for s in self.sources if s.name == name)

    def generate(self, user_ids, history: History, exclude: sp.csr_matrix | None = None) -> Candidates:
        """Union of the sources' top items per user, skipping `exclude` (default: the user's history)."""
        user_ids = list(user_ids)
        if exclude is None:
            exclude = history.matrix(user_ids)
        tops, scorers = [], {}
        for source in self.sources:
            top, scores_at = source.candidates(user_ids, history, self.n_per_source.get(source.name, 50), exclude)
            tops.append(top)
            scorers[source.name] = scores_at
            for view, dense in source.views(user_ids, history).items():
                scorers[f"{source.name}_{view}"] = lambda p, dense=dense: np.take_along_axis(dense, p, 1)
        stacked = np.concatenate(tops, axis=1)
        bits = np.concatenate([np.full(t.shape, 1 << k, dtype=np.int32) for k, t in enumerate(tops)], axis=1)
        positions = np.full(stacked.shape, -1, dtype=np.int64)
        proposed_by = np.zeros(stacked.shape, dtype=np.int32)
        width = 0
        for r in range(len(user_ids)):
            ok = stacked[r] >= 0
            row, row_bits = stacked[r][ok], bits[r][ok]
            uniq, first, inverse = np.unique(row, return_index=True, return_inverse=True)
            mask = np.zeros(len(uniq), dtype=np.int32)
            np.bitwise_or.at(mask, inverse, row_bits)
            order = np.argsort(first, kind="stable")  # proposal order: earlier sources, better ranks first
            m = len(order)
            positions[r, :m], proposed_by[r, :m] = uniq[order], mask[order]
            width = max(width, m)
        positions, proposed_by = positions[:, :width], proposed_by[:, :width]
        safe = np.maximum(positions, 0)
        scores = {}
        for name, scores_at in scorers.items():  # each source's score at every candidate (ranking features)
            s = np.asarray(scores_at(safe), dtype=np.float32)
            s[(positions < 0) | ~np.isfinite(s)] = np.nan
            scores[name] = s
        return Candidates(user_ids, positions, proposed_by, scores)

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        names = [s.name for s in self.sources]
        (path / "generator.json").write_text(json.dumps({"sources": names, "n_per_source": self.n_per_source}))
        for source in self.sources:
            source.save(path / source.name)

    @classmethod
    def load(cls, path: Path, catalog: Catalog, **context) -> CandidateGenerator:
        path = Path(path)
        meta = json.loads((path / "generator.json").read_text())
        sources = [CandidateSource.load(path / name, **context) for name in meta["sources"]]
        return cls(catalog, sources, meta["n_per_source"])


def candidate_recall(generator: CandidateGenerator, history: History, target: pd.DataFrame,
                     exclude: sp.csr_matrix | None = None, batch_size: int = 512) -> dict[str, float]:
    """Share of each target user's target items that the candidates contain (per source and union),
    averaged over users: the ceiling any ranker over these candidates can reach."""
    users = [u for u in pd.unique(target["user_id"].astype(str))]
    truth = target.assign(pos=generator.catalog.positions(target["item_id"].to_numpy()))
    truth = truth.groupby(truth["user_id"].astype(str))["pos"].apply(lambda s: set(s[s >= 0]))
    names = [s.name for s in generator.sources]
    hits = {name: [] for name in names + ["union"]}
    sizes = []
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        ex = None if exclude is None else exclude[start:start + batch_size]
        cands = generator.generate(batch, history, ex)
        for r, user in enumerate(batch):
            want = truth[user]
            if not want:
                continue
            row, by = cands.positions[r], cands.proposed_by[r]
            sizes.append(int((row >= 0).sum()))
            hits["union"].append(len(want & set(row[row >= 0])) / len(want))
            for k, name in enumerate(names):
                hits[name].append(len(want & set(row[(by >> k) & 1 == 1])) / len(want))
    out = {f"candidate_recall/{name}": float(np.mean(v)) if v else 0.0 for name, v in hits.items()}
    out["candidates_per_user"] = float(np.mean(sizes)) if sizes else 0.0
    return out
