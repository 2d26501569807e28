"""The Recommender: retrieve -> filter -> rank -> re-rank, with a cold-start fallback.

This one object is built by the training pipeline, scored by the evaluation step, saved in the model bundle,
run by batch inference and by the BentoML service, so what is evaluated offline is what is served. Its
`history` is the online state (what each user has done); `update_history` is how events reach it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.features.history import Catalog, History
from recsys.ranking.model import RankingModel
from recsys.retrieval.candidates import CandidateGenerator
from recsys.retrieval.sources import TwoTowerSource

DEFAULTS = {"batch_size": 256, "cold_start_source": "popular", "rank": True, "score_source": None}


class Recommender:
    def __init__(self, catalog: Catalog, generator: CandidateGenerator, ranking: RankingModel | None,
                 history: History, config: dict | None = None, version: str = "dev"):
        self.catalog, self.generator, self.ranking, self.history = catalog, generator, ranking, history
        self.config = {**DEFAULTS, **(config or {})}
        self.version = version

    # ---- online state ----
    def update_history(self, interactions: pd.DataFrame) -> None:
        self.history.add(interactions)

    # ---- the stages ----
    def _rank(self, user_ids: list[str], k: int, exclude: dict[str, set] | None, context: dict | None):
        """Yield (user_id, positions, scores, source names) for users with history."""
        names = [s.name for s in self.generator.sources]
        allowed = self._allowed(context)
        for start in range(0, len(user_ids), self.config["batch_size"]):
            batch = user_ids[start:start + self.config["batch_size"]]
            seen = self.history.matrix(batch).tolil()  # filter: already seen
            if exclude:
                for r, user in enumerate(batch):
                    for p in self.catalog.positions(list(exclude.get(user, ()))):
                        if p >= 0:
                            seen[r, p] = 1
            cands = self.generator.generate(batch, self.history, seen.tocsr())
            if self.ranking is not None and self.config["rank"]:
                scores = self.ranking.score(cands, self.history)
            else:  # retrieval-only variant: order by one source's score
                s = cands.scores[self.config["score_source"] or names[0]]
                scores = np.where(cands.valid & ~np.isnan(s), s, -np.inf)
            if allowed is not None:
                scores = np.where(allowed[np.maximum(cands.positions, 0)], scores, -np.inf)
            order = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # re-rank: score order, no duplicates
            for r, user in enumerate(batch):
                keep = order[r][np.isfinite(scores[r, order[r]])]
                bits = cands.proposed_by[r, keep]
                sources = [names[(int(b) & -int(b)).bit_length() - 1] for b in bits]
                yield user, cands.positions[r, keep], scores[r, keep], sources

    def _allowed(self, context: dict | None) -> np.ndarray | None:
        """Catalogue mask of items matching every attribute filter in `context` (None = no filter)."""
        if not context:
            return None
        attrs = self.catalog.attributes
        mask = np.ones(len(self.catalog), dtype=bool)
        for column, wanted in context.items():
            if column not in attrs.columns:
                raise KeyError(f"unknown context filter {column!r}; item attributes are {list(attrs.columns)}")
            values = set(wanted) if isinstance(wanted, (list, tuple, set)) else {wanted}
            mask &= attrs[column].isin(values).to_numpy()
        return mask

    def _cold_start(self, k: int, exclude=(), context: dict | None = None):
        """Unknown users: the cold-start source's order (trending), minus exclusions, within the context."""
        source = self.generator.source(self.config["cold_start_source"])
        scores = source.dense_scores(["?"], self.history)[0].astype(np.float64)
        allowed = self._allowed(context)
        if allowed is not None:
            scores[~allowed] = -np.inf
        for p in self.catalog.positions(list(exclude)):
            if p >= 0:
                scores[p] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        top = top[np.isfinite(scores[top])]
        return top, scores[top]

    # ---- public API ----
    def recommend(self, user_id: str, k: int = 10, exclude=(), context: dict | None = None) -> list[dict]:
        """Top-k for one user: item_id, score, source (candidate source that proposed it) and stage."""
        user_id = str(user_id)
        if user_id in self.history:
            (_, pos, scores, sources), = self._rank([user_id], k, {user_id: set(exclude)}, context)
            stage = "ranked" if self.ranking is not None and self.config["rank"] else "retrieved"
            out = [{"item_id": self.catalog.item_ids[p], "score": float(s), "source": src, "stage": stage}
                   for p, s, src in zip(pos, scores, sources)]
            if len(out) == k:
                return out
            exclude = set(exclude) | {o["item_id"] for o in out} | set(self.catalog.item_ids[self.history.items(user_id)])
        else:
            out = []
        top, scores = self._cold_start(k - len(out), exclude, context)
        return out + [{"item_id": self.catalog.item_ids[p], "score": float(s), "source":
                       self.config["cold_start_source"], "stage": "cold_start"} for p, s in zip(top, scores)]

    def recommend_batch(self, user_ids, k: int = 10, exclude: pd.DataFrame | None = None) -> pd.DataFrame:
        """Top-k for many users: DataFrame[user_id, rank, item_id, score, source]. Users without history
        get the cold-start list. `exclude` (user_id, item_id rows) masks more items beyond the history,
        e.g. the validation items under the offline protocol."""
        user_ids = [str(u) for u in user_ids]
        known = [u for u in user_ids if u in self.history]
        extra = None
        if exclude is not None and len(exclude):
            extra = exclude.groupby(exclude.user_id.astype(str)).item_id.agg(lambda s: set(s.astype(str))).to_dict()
        frames = []
        for user, pos, scores, sources in self._rank(known, k, extra, None):
            frames.append(pd.DataFrame({"user_id": user, "rank": np.arange(1, len(pos) + 1),
                                        "item_id": self.catalog.item_ids[pos], "score": scores,
                                        "source": sources}))
        cold = [u for u in user_ids if u not in self.history]
        if cold:
            top, scores = self._cold_start(k)
            block = pd.DataFrame({"rank": np.arange(1, len(top) + 1), "item_id": self.catalog.item_ids[top],
                                  "score": scores, "source": "cold_start"})
            frames += [block.assign(user_id=u) for u in cold]
        columns = ["user_id", "rank", "item_id", "score", "source"]
        if not frames:
            return pd.DataFrame(columns=columns)
        return pd.concat(frames, ignore_index=True)[columns]

    def variant(self, **config) -> Recommender:
        """A shallow copy with other settings, e.g. `variant(rank=False, score_source="two_tower")` for the
        retrieval-only baseline. Models and history are shared, not copied."""
        other = copy.copy(self)
        other.config = {**self.config, **config}
        return other

    # ---- persistence: one directory ----
    def save(self, path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"item_id": self.catalog.item_ids}).join(self.catalog.attributes).to_parquet(path / "items.parquet")
        two_tower = self._two_tower()
        if two_tower is not None:
            two_tower.model.save(path / "two_tower")
            if two_tower.index is not None:
                two_tower.index.save(path / "ann_index")
        self.generator.save(path / "candidates")
        if self.ranking is not None:
            self.ranking.save(path / "ranking")
        self.history.to_frame().to_parquet(path / "history.parquet")
        meta = {"version": self.version, "config": self.config, "event_weights": self.history.event_weights}
        (path / "recommender.json").write_text(json.dumps(meta, indent=2))
        return path

    @classmethod
    def load(cls, path) -> Recommender:
        from recsys.ranking.model import RankingModel
        from recsys.retrieval.index import AnnIndex
        from recsys.retrieval.two_tower import TwoTowerModel

        path = Path(path)
        meta = json.loads((path / "recommender.json").read_text())
        items = pd.read_parquet(path / "items.parquet")
        catalog = Catalog(items.item_id.to_numpy(dtype=object), items.drop(columns="item_id"))
        context = {}
        if (path / "two_tower").exists():
            context["model"] = TwoTowerModel.load(path / "two_tower")
            context["index"] = AnnIndex.load(path / "ann_index") if (path / "ann_index").exists() else None
        generator = CandidateGenerator.load(path / "candidates", catalog, **context)
        ranking = RankingModel.load(path / "ranking", catalog) if (path / "ranking").exists() else None
        history = History.from_frame(catalog, pd.read_parquet(path / "history.parquet"), meta["event_weights"])
        return cls(catalog, generator, ranking, history, meta["config"], meta["version"])

    def _two_tower(self) -> TwoTowerSource | None:
        return next((s for s in self.generator.sources if isinstance(s, TwoTowerSource)), None)
