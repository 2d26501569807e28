"""The Recommender: retrieve -> filter -> rank -> re-rank, with a cold-start fallback and explanations.

This one object is built by the training pipeline, scored by the evaluation step (`recommend_batch`), saved
in the model bundle, run by batch inference and by the BentoML service (`recommend`, `similar_items`,
`record_feedback`), so what is evaluated offline is what is served: both entry points run the same
`_personal` / `_cold_slate` code under the same filters and re-ranking. The stages live in their own modules
(filters, context, rerank, cold_start, explain); this module orchestrates them. Its online state is the
`history` (what each user has done), the impression log, the blocklist and the unavailable set.
"""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.data.schema import EVENT_TYPE, ITEM_ID, USER_ID
from recsys.features.history import Catalog, History
from recsys.ranking.model import RankingModel
from recsys.retrieval.candidates import CandidateGenerator
from recsys.retrieval.sources import TwoTowerSource
from recsys.serving import persistence
from recsys.serving.cold_start import ColdStart, interleave
from recsys.serving.config import resolve_config
from recsys.serving.context import ContextFilter, ParsedContext
from recsys.serving.errors import InvalidRequest, UnknownItem
from recsys.serving.explain import Explainer, rule_text
from recsys.serving.feedback import IMPRESSION, normalise_events
from recsys.serving.filters import ImpressionLog, ItemSet, SeenPolicy, event_type_of_weight
from recsys.serving.rerank import Reranker, parse_rules

MAX_K = 1000
STAGES = ("filter", "retrieve", "rank", "rerank", "cold_start", "explain", "recommend")


@dataclass
class Slate:
    """One user's list under construction: catalogue positions and per-item metadata."""
    positions: list = field(default_factory=list)
    scores: list = field(default_factory=list)
    sources: list = field(default_factory=list)
    stages: list = field(default_factory=list)
    reasons: list = field(default_factory=list)

    def extend(self, other: Slate) -> Slate:
        for name in ("positions", "scores", "sources", "stages", "reasons"):
            getattr(self, name).extend(getattr(other, name))
        return self


class Recommender:
    def __init__(self, catalog: Catalog, generator: CandidateGenerator, ranking: RankingModel | None,
                 history: History, config: dict | None = None, version: str = "dev",
                 users: pd.DataFrame | None = None, cold_start: ColdStart | None = None):
        self.catalog, self.generator, self.ranking, self.history = catalog, generator, ranking, history
        self.config = resolve_config(config)
        self.version = version
        self.observer = None  # callable(stage, seconds, n_items): the service wires it to Prometheus
        self.clock = time.time  # impression times; tests replace it
        c, f = self.config["cold_start"], self.config["filters"]
        self.cold = cold_start or ColdStart(c["window_days"], c["prior"],
                                            segment_columns=c["segment_columns"]).fit(history, users)
        self.blocklist = ItemSet(len(catalog), catalog.index, path=f["blocklist_file"],
                                 check_seconds=f["blocklist_check_seconds"])
        self.unavailable = ItemSet(len(catalog), catalog.index, ids=self._unavailable_attribute())
        self.impressions = ImpressionLog(f["max_impressions"], 3600 * f["impression_window_hours"], f["max_users"])
        self.journal: list[pd.DataFrame] = []  # events applied by record_feedback (adopt_online_state)
        self._lock = threading.Lock()
        self._configure()

    def _configure(self) -> None:
        """Objects derived from config and catalogue (rebuilt by variant() and add_items())."""
        two_tower = self._two_tower()
        self._vectors = two_tower.item_vectors(self.catalog) if two_tower is not None else None
        users = {**{a: [] for a in (two_tower.user_attributes if two_tower else [])}, **self.cold.values()}
        self.context_filter = ContextFilter(self.catalog.attributes, users)
        self.seen = SeenPolicy(self.history.event_weights, self.config["filters"]["seen_event_types"])
        r, attrs = self.config["rerank"], self.catalog.attributes
        vectors = self._vectors if r["similarity"] in ("auto", "embedding") else None
        if r["similarity"] == "embedding" and vectors is None:
            raise ValueError("rerank.similarity 'embedding' needs a two-tower source")
        categories = None
        if r["similarity"] == "category" or (r["similarity"] == "auto" and vectors is None):
            if r["category_column"] in attrs.columns:
                categories = pd.factorize(attrs[r["category_column"]])[0]
        rules = parse_rules(self.config["rules"], self.context_filter, self.catalog.index)
        self.reranker = Reranker(r["mmr_weight"], r["pool"], rules, vectors, categories)
        ranker = self.ranking.ranker if self.ranking is not None else None
        e = self.config["explain"]
        self.explainer = Explainer(self.catalog, self.generator, ranker, event_type_of_weight(self.history.event_weights),
                                   self._vectors, e["factors"], e["history_items"])
        self._cold_cache: dict = {}

    # ---- public API ----
    def recommend(self, user_id: str, k: int = 10, exclude=(), context: dict | None = None) -> list[dict]:
        """Top-k for one user: dicts with item_id, score, source, stage, reason. Records the impressions."""
        t0, timer = time.perf_counter(), {}
        user_id, k, explicit = self._check(user_id, k, exclude)
        parsed = self.context_filter.parse(context)
        self.blocklist.maybe_reload()
        now = self.clock()
        with _timed(timer, "filter"):
            excluded = self._excluded(user_id, explicit, now)
        slate = Slate()
        if user_id in self.history:
            slate = self._personal([user_id], [excluded], parsed, k, timer, explain=True)[0]
        if len(slate.positions) < k:
            with _timed(timer, "cold_start"):
                taken = np.union1d(excluded, np.asarray(slate.positions, dtype=np.int64))
                slate.extend(self._cold_slate(user_id, k - len(slate.positions), taken, parsed))
        if self.config["filters"]["record_impressions"]:
            self.impressions.record(user_id, slate.positions, now)
        ids = self.catalog.item_ids
        out = [{"item_id": ids[p], "score": float(s), "source": src, "stage": st, "reason": r}
               for p, s, src, st, r in zip(slate.positions, slate.scores, slate.sources, slate.stages, slate.reasons)]
        timer["recommend"] = (time.perf_counter() - t0, len(out))
        self._emit(timer)
        return out

    def recommend_batch(self, user_ids, k: int = 10, exclude: pd.DataFrame | None = None) -> pd.DataFrame:
        """Top-k for many users: DataFrame[user_id, rank, item_id, score, source, stage], the same lists
        `recommend` returns in the same state (no context, no explanations, no impressions recorded).
        `exclude` (user_id, item_id rows) masks more items, e.g. the validation items offline."""
        user_ids = [str(u) for u in user_ids]
        _, k, _ = self._check("batch", k, ())
        extra = {}
        if exclude is not None and len(exclude):
            pos = self.catalog.positions(exclude[ITEM_ID].to_numpy())
            frame = pd.DataFrame({"u": exclude[USER_ID].astype(str).to_numpy(), "p": pos})
            extra = frame[frame.p >= 0].groupby("u").p.agg(lambda s: s.to_numpy()).to_dict()
        now, none, empty = self.clock(), ParsedContext(), np.empty(0, np.int64)
        excluded = {u: self._excluded(u, extra.get(u, empty), now) for u in dict.fromkeys(user_ids)}
        known = [u for u in excluded if u in self.history]
        slates = {}
        size = self.config["batch_size"]
        for start in range(0, len(known), size):
            block = known[start:start + size]
            slates.update(zip(block, self._personal(block, [excluded[u] for u in block], none, k, {}, False)))
        rows = []
        for u in excluded:
            slate = slates.get(u, Slate())
            if len(slate.positions) < k:
                taken = np.union1d(excluded[u], np.asarray(slate.positions, dtype=np.int64))
                slate.extend(self._cold_slate(u, k - len(slate.positions), taken, none))
            slates[u] = slate
        for u in user_ids:
            s = slates[u]
            rows.append(pd.DataFrame({"user_id": u, "rank": np.arange(1, len(s.positions) + 1),
                                      "item_id": self.catalog.item_ids[np.asarray(s.positions, dtype=np.int64)],
                                      "score": np.asarray(s.scores, dtype=np.float64), "source": s.sources,
                                      "stage": s.stages}))
        columns = ["user_id", "rank", "item_id", "score", "source", "stage"]
        return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)

    def similar_items(self, item_id: str, k: int = 10) -> list[dict]:
        """Items most like `item_id` (two-tower cosine; attribute-based vectors for items added after
        training). Unknown id -> UnknownItem (a 404 in the service). Blocked/unavailable items are skipped."""
        _, k, _ = self._check("similar", k, ())
        if not isinstance(item_id, str) or item_id not in self.catalog.index:
            raise UnknownItem(f"unknown item {item_id!r}", "item_id")
        pos = self.catalog.index[item_id]
        if self._vectors is not None and self._vectors[pos].any():
            scores, source = self._vectors @ self._vectors[pos], "two_tower"
            scores[~self._vectors.any(axis=1)] = -np.inf
        else:  # no vector: same category, most trending first
            cats = self.reranker.categories if self.reranker.categories is not None else np.zeros(len(self.catalog), int)
            scores, source = np.where(cats == cats[pos], self.cold.trending[: len(cats)], -np.inf), "category"
        scores = scores.astype(np.float64)
        scores[[pos, *self.blocklist.positions, *self.unavailable.positions]] = -np.inf
        top = _top(scores, k)
        name = self.explainer.name(pos)
        return [{"item_id": self.catalog.item_ids[p], "score": float(scores[p]), "source": source,
                 "stage": "similar", "reason": f"similar to {name}"} for p in top]

    def record_feedback(self, events) -> dict:
        """Apply feedback (DataFrame / list of dicts: user_id, item_id, event_type, timestamp) to the online
        state: history (so the next recommend personalises on and filters it) and impression fatigue
        (engagement clears it; event_type "impression" adds to it). Returns counts."""
        frame = normalise_events(events, self.clock())
        pos = self.catalog.positions(frame[ITEM_ID].to_numpy())
        is_imp = (frame[EVENT_TYPE] == IMPRESSION).to_numpy()
        with self._lock:
            for (user, imp), block in frame.assign(_p=pos, _i=is_imp)[pos >= 0].groupby([USER_ID, "_i"]):
                if imp:
                    self.impressions.record(user, block._p.to_numpy(), block.timestamp.max().timestamp())
                else:
                    self.impressions.engage(user, block._p.to_numpy())
            events_ = frame[~is_imp]
            if len(events_):
                self.history.add(events_)
                self.journal.append(events_)
        return {"applied": int((pos >= 0).sum()), "unknown_items": int((pos < 0).sum()),
                "impressions": int(is_imp.sum())}

    def update_history(self, interactions: pd.DataFrame) -> None:
        """Add known interactions in bulk (batch inference, refresh): no validation, no journal."""
        self.history.add(interactions)

    def set_blocklist(self, item_ids) -> None:
        """Replace the blocked items (the service's admin endpoint). Persisted with the bundle."""
        self.blocklist.set(item_ids)

    def reload_blocklist(self) -> bool:
        """Re-read `filters.blocklist_file` now (True if the set changed)."""
        return self.blocklist.reload()

    def set_unavailable(self, item_ids) -> None:
        """Replace the unavailable items (sold out, delisted). Persisted with the bundle."""
        self.unavailable.set(item_ids)

    def add_items(self, items: pd.DataFrame) -> int:
        """Add catalogue items unseen in training: attribute-based two-tower vectors (retrievable, and
        similar_items works for them), no trend, no co-visits yet. Returns how many were new."""
        return persistence.add_items(self, items)

    def refresh_trends(self) -> None:
        """Re-fit the cold-start trends on the current history (recsys.training.refresh_recommender)."""
        self.cold.fit(self.history)
        self._cold_cache = {}

    def context_schema(self) -> dict[str, str]:
        """Accepted context keys and what they take (for API docs)."""
        return self.context_filter.describe()

    def variant(self, **config) -> Recommender:
        """A copy with other settings, e.g. `variant(rank=False, score_source="two_tower")` (retrieval-only
        baseline) or `variant(rerank={"mmr_weight": 0.3})`. Models and online state are shared."""
        other = copy.copy(self)
        other.config = resolve_config(config, self.config)
        other._configure()
        return other

    def adopt_online_state(self, previous: Recommender) -> None:
        """Carry a running service's online state over to this newly loaded bundle (hot reload): blocked
        and unavailable items, impressions, and feedback events newer than this bundle's history."""
        persistence.adopt_online_state(self, previous)

    def save(self, path):
        return persistence.save(self, path)

    @classmethod
    def load(cls, path) -> Recommender:
        return persistence.load(cls, path)

    # ---- the stages ----
    def _check(self, user_id, k, exclude):
        if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or not str(user_id):
            raise InvalidRequest(f"user_id must be a non-empty string, got {user_id!r}", "user_id")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise InvalidRequest(f"k must be an integer in [1, {MAX_K}], got {k!r}", "k")
        if isinstance(exclude, (str, bytes)) or not all(isinstance(i, str) for i in exclude):
            raise InvalidRequest("exclude must be a list of item id strings", "exclude")
        pos = self.catalog.positions(list(exclude))
        return str(user_id), int(k), pos[pos >= 0]

    def _excluded(self, user_id: str, explicit: np.ndarray, now: float) -> np.ndarray:
        """Filter stage: sorted positions this user must not get."""
        return np.unique(np.concatenate([self.seen.positions(self.history, user_id), explicit,
                                         self.blocklist.positions, self.unavailable.positions,
                                         self.impressions.fatigued(user_id, now)]).astype(np.int64))

    def _personal(self, users, excluded, parsed: ParsedContext, k, timer, explain) -> list[Slate]:
        with _timed(timer, "retrieve"):
            cands = self.generator.generate(users, self.history, _exclusion_matrix(excluded, len(self.catalog)))
        if parsed.mask is not None:  # context filter right after retrieval: the ranker sees only matches
            with _timed(timer, "filter"):
                drop = cands.valid & ~parsed.mask[np.maximum(cands.positions, 0)]
                cands.positions[drop] = -1
                for s in cands.scores.values():
                    s[drop] = np.nan
        valid, X, leaves = cands.valid, None, None
        with _timed(timer, "rank", int(valid.sum())):
            if self.ranking is not None and self.config["rank"]:
                features, ranker = self.ranking.features, self.ranking.ranker
                if hasattr(features, "transform_array"):  # numpy all the way: no DataFrame per request
                    X = features.transform_array(cands, self.history, names=ranker.feature_names)
                else:  # a plugged-in feature provider with only the DataFrame interface
                    X = features.transform(cands, self.history)
                scores = np.full(valid.shape, -np.inf)
                paths = self.explainer.contributions
                if paths is not None and paths.tabulated and not isinstance(X, pd.DataFrame) and len(X):
                    leaves = paths.leaves(X)  # one pass gives the scores and, later, the explanations
                    scores[valid] = paths.score(leaves)
                else:
                    scores[valid] = ranker.predict(X) if len(X) else []
            else:
                s = cands.scores[self.config["score_source"] or self.generator.sources[0].name]
                scores = np.where(valid & ~np.isnan(s), s, -np.inf)
        names = [s.name for s in self.generator.sources]
        stage = "ranked" if X is not None else "retrieved"
        row_of = np.full(valid.shape, -1)
        row_of[valid] = np.arange(int(valid.sum()))
        slates = []
        with _timed(timer, "rerank"):
            for r, user in enumerate(users):
                ok = valid[r] & np.isfinite(scores[r])
                allowed = _allowed_fn(excluded[r], parsed.mask)
                pos, sc, labels = self.reranker.rerank(cands.positions[r, ok], scores[r, ok], k, allowed)
                cols = [np.flatnonzero(cands.positions[r] == p) for p in pos]
                bits = [int(cands.proposed_by[r, c[0]]) if len(c) else 0 for c in cols]
                slate = Slate(list(pos), list(sc), [names[(b & -b).bit_length() - 1] if b else "rule" for b in bits],
                              ["pinned" if lb.startswith("pin:") else stage for lb in labels], list(labels))
                slate.rows = [int(row_of[r, c[0]]) if len(c) else -1 for c in cols]
                slates.append(slate)
        for user, slate in zip(users, slates):
            if explain and self.config["explain"]["enabled"]:
                with _timed(timer, "explain", len(slate.positions)):
                    rows = np.asarray(slate.rows)
                    Xs = leaf_rows = None
                    at = np.maximum(rows, 0)
                    if leaves is not None and (rows >= 0).any():
                        leaf_rows = [lv[at] for lv in leaves]
                    elif X is not None and (rows >= 0).any():
                        Xs = X.iloc[at] if isinstance(X, pd.DataFrame) else X[at]
                    slate.reasons = self.explainer.personal(self.history, user, slate.positions, slate.sources,
                                                            Xs, slate.reasons, leaf_rows, rows >= 0)
            else:
                slate.reasons = [rule_text(lb) for lb in slate.reasons]
        return slates

    def _cold_lists(self, segment: dict):
        """(trending scores, phrase, content scores or None, phrase) for a segment; cached."""
        key = tuple(sorted(segment.items()))
        hit = self._cold_cache.get(key)
        if hit is None:
            trend, text = self.cold.scores(segment)
            content, content_text = None, ""
            two_tower = self._two_tower()
            profile = {a: v for a, v in segment.items() if two_tower and a in two_tower.user_attributes}
            if profile and self._vectors is not None and self.config["cold_start"]["content_share"] > 0:
                content = self._vectors @ two_tower.attribute_vectors([profile])[0]
                content[~self._vectors.any(axis=1)] = -np.inf
                who = " and ".join(f"{a.replace('_', ' ')} {v}" for a, v in sorted(profile.items()))
                content_text = f"matches travellers of {who}"
            hit = (trend, text, content, content_text)
            if len(self._cold_cache) < 4096:
                self._cold_cache[key] = hit
        return hit

    def _cold_slate(self, user_id: str, k: int, excluded: np.ndarray, parsed: ParsedContext) -> Slate:
        """Trending for the user's segment with content matches mixed in, filtered like everything else,
        then re-ranked (MMR, rules) like a personal list."""
        c = self.config["cold_start"]
        trend, text, content, content_text = self._cold_lists({**self.cold.segment_of(user_id), **parsed.segment})
        allowed = np.ones(len(self.catalog), dtype=bool) if parsed.mask is None else parsed.mask.copy()
        allowed[excluded] = False
        n = len(self.catalog)
        trending = _top(np.where(allowed, _fit(trend, n), -np.inf), c["pool"])
        matches = _top(np.where(allowed, content, -np.inf), c["pool"]) if content is not None else trending[:0]
        pos, from_content = interleave(trending, matches, c["content_share"], c["pool"])
        rel = 1.0 - np.arange(len(pos)) / max(len(pos), 1)
        chosen, sc, labels = self.reranker.rerank(pos, rel, k, lambda p: bool(allowed[p]))
        flags = dict(zip(pos.tolist(), from_content.tolist()))
        sources = ["two_tower" if flags.get(p) else "trending" for p in chosen]
        reasons = ["; ".join(x for x in (content_text if s == "two_tower" else text, rule_text(lb)) if x)
                   for s, lb in zip(sources, labels)]
        stages = ["pinned" if lb.startswith("pin:") else "cold_start" for lb in labels]
        return Slate(list(chosen), list(sc), sources, stages, reasons)

    def _unavailable_attribute(self) -> list[str]:
        col = self.config["filters"]["availability_column"]
        attrs = self.catalog.attributes
        if not col or col not in attrs.columns:
            return []
        flag = attrs[col].map(lambda v: v is False or str(v).lower() in ("false", "0", "no"))
        return list(self.catalog.item_ids[flag.to_numpy(dtype=bool)])

    def _emit(self, timer: dict) -> None:
        if self.observer is not None:
            for stage, (seconds, n) in timer.items():
                self.observer(stage, seconds, n)

    def _two_tower(self) -> TwoTowerSource | None:
        return next((s for s in self.generator.sources if isinstance(s, TwoTowerSource)), None)


class _timed:
    """Adds the block's wall time (and an item count) to timer[stage]."""

    def __init__(self, timer: dict, stage: str, n: int = 0):
        self.timer, self.stage, self.n = timer, stage, n

    def __enter__(self):
        self.t0 = time.perf_counter()

    def __exit__(self, *exc):
        seconds, n = self.timer.get(self.stage, (0.0, 0))
        self.timer[self.stage] = (seconds + time.perf_counter() - self.t0, n + self.n)


def _exclusion_matrix(excluded: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    indptr = np.r_[0, np.cumsum([len(e) for e in excluded])]
    indices = np.concatenate(excluded) if excluded else np.empty(0, np.int64)
    return sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=(len(excluded), n_items))


def _allowed_fn(excluded: np.ndarray, mask: np.ndarray | None):
    def allowed(p: int) -> bool:
        i = np.searchsorted(excluded, p)
        return not (i < len(excluded) and excluded[i] == p) and (mask is None or bool(mask[p]))
    return allowed


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the n best finite scores, best first (ties by position)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) > n:
        finite = finite[np.argpartition(-scores[finite], n - 1)[:n]]
    return finite[np.lexsort((finite, -scores[finite]))]


def _fit(values: np.ndarray, n: int) -> np.ndarray:
    return values if len(values) >= n else np.r_[values, np.zeros(n - len(values), values.dtype)]
