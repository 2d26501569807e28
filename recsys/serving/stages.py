"""The stages of the Recommender as functions over it: personal lists (retrieve -> context filter -> rank ->
re-rank -> explain), cold-start lists, similar items, and the small helpers they share.

recsys/serving/recommender.py holds the public API and the online state and calls these; they live apart so
each stays readable (the filter, re-rank, cold-start and explain logic itself is in its own module).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.serving.cold_start import interleave
from recsys.serving.context import ParsedContext
from recsys.serving.errors import UnknownItem
from recsys.serving.explain import rule_text


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


def personal(rec, users, excluded, parsed: ParsedContext, k, timer, explain) -> list[Slate]:
    with _timed(timer, "retrieve"):
        cands = rec.generator.generate(users, rec.history, _exclusion_matrix(excluded, len(rec.catalog)))
    if parsed.mask is not None:  # context filter right after retrieval: the ranker sees only matches
        with _timed(timer, "filter"):
            drop = cands.valid & ~parsed.mask[np.maximum(cands.positions, 0)]
            cands.positions[drop] = -1
            for s in cands.scores.values():
                s[drop] = np.nan
    valid, X, leaves = cands.valid, None, None
    with _timed(timer, "rank", int(valid.sum())):
        if rec.ranking is not None and rec.config["rank"]:
            features, ranker = rec.ranking.features, rec.ranking.ranker
            if hasattr(features, "transform_array"):  # numpy all the way: no DataFrame per request
                X = features.transform_array(cands, rec.history, names=ranker.feature_names)
            else:  # a plugged-in feature provider with only the DataFrame interface
                X = features.transform(cands, rec.history)
            scores = np.full(valid.shape, -np.inf)
            paths = rec.explainer.contributions
            if rec._compiled is not None and not isinstance(X, pd.DataFrame) and len(X):
                scores[valid] = rec._compiled(X)  # native-code forest (compiled.py)
            elif paths is not None and paths.tabulated and not isinstance(X, pd.DataFrame) and len(X):
                leaves = paths.leaves(X)  # one pass gives the scores and, later, the explanations
                scores[valid] = paths.score(leaves)
            else:
                scores[valid] = ranker.predict(X) if len(X) else []
        else:
            s = cands.scores[rec.config["score_source"] or rec.generator.sources[0].name]
            scores = np.where(valid & ~np.isnan(s), s, -np.inf)
    names = [s.name for s in rec.generator.sources]
    stage = "ranked" if X is not None else "retrieved"
    row_of = np.full(valid.shape, -1)
    row_of[valid] = np.arange(int(valid.sum()))
    slates = []
    with _timed(timer, "rerank"):
        for r, user in enumerate(users):
            ok = valid[r] & np.isfinite(scores[r])
            allowed = _allowed_fn(excluded[r], parsed.mask)
            pos, sc, labels = rec.reranker.rerank(cands.positions[r, ok], scores[r, ok], k, allowed)
            cols = [np.flatnonzero(cands.positions[r] == p) for p in pos]
            bits = [int(cands.proposed_by[r, c[0]]) if len(c) else 0 for c in cols]
            slate = Slate(list(pos), list(sc), [names[(b & -b).bit_length() - 1] if b else "rule" for b in bits],
                          ["pinned" if lb.startswith("pin:") else stage for lb in labels], list(labels))
            slate.rows = [int(row_of[r, c[0]]) if len(c) else -1 for c in cols]
            slates.append(slate)
    for user, slate in zip(users, slates):
        if explain and rec.config["explain"]["enabled"]:
            with _timed(timer, "explain", len(slate.positions)):
                rows = np.asarray(slate.rows)
                Xs = leaf_rows = None
                at = np.maximum(rows, 0)
                if leaves is not None and (rows >= 0).any():
                    leaf_rows = [lv[at] for lv in leaves]
                elif X is not None and (rows >= 0).any():
                    Xs = X.iloc[at] if isinstance(X, pd.DataFrame) else X[at]
                slate.reasons = rec.explainer.personal(rec.history, user, slate.positions, slate.sources,
                                                        Xs, slate.reasons, leaf_rows, rows >= 0)
        else:
            slate.reasons = [rule_text(lb) for lb in slate.reasons]
    return slates

def cold_lists(rec, segment: dict):
    """(trending scores, phrase, content scores or None, phrase) for a segment; cached."""
    key = tuple(sorted(segment.items()))
    hit = rec._cold_cache.get(key)
    if hit is None:
        trend, text = rec.cold.scores(segment)
        content, content_text = None, ""
        two_tower = rec._two_tower()
        profile = {a: v for a, v in segment.items() if two_tower and a in two_tower.user_attributes}
        if profile and rec._vectors is not None and rec.config["cold_start"]["content_share"] > 0:
            content = rec._vectors @ two_tower.attribute_vectors([profile])[0]
            content[~rec._vectors.any(axis=1)] = -np.inf
            who = " and ".join(f"{a.replace('_', ' ')} {v}" for a, v in sorted(profile.items()))
            content_text = f"matches travellers of {who}"
        hit = (trend, text, content, content_text)
        if len(rec._cold_cache) < 4096:
            rec._cold_cache[key] = hit
    return hit

def cold_slate(rec, user_id: str, k: int, excluded: np.ndarray, parsed: ParsedContext) -> Slate:
    """Trending for the user's segment with content matches mixed in, filtered like everything else,
    then re-ranked (MMR, rules) like a personal list."""
    c = rec.config["cold_start"]
    trend, text, content, content_text = cold_lists(rec, {**rec.cold.segment_of(user_id), **parsed.segment})
    allowed = np.ones(len(rec.catalog), dtype=bool) if parsed.mask is None else parsed.mask.copy()
    allowed[excluded] = False
    n = len(rec.catalog)
    trending = _top(np.where(allowed, _fit(trend, n), -np.inf), c["pool"])
    matches = _top(np.where(allowed, content, -np.inf), c["pool"]) if content is not None else trending[:0]
    pos, from_content = interleave(trending, matches, c["content_share"], c["pool"])
    rel = 1.0 - np.arange(len(pos)) / max(len(pos), 1)
    chosen, sc, labels = rec.reranker.rerank(pos, rel, k, lambda p: bool(allowed[p]))
    flags = dict(zip(pos.tolist(), from_content.tolist()))
    sources = ["two_tower" if flags.get(p) else "trending" for p in chosen]
    reasons = ["; ".join(x for x in (content_text if s == "two_tower" else text, rule_text(lb)) if x)
               for s, lb in zip(sources, labels)]
    stages = ["pinned" if lb.startswith("pin:") else "cold_start" for lb in labels]
    return Slate(list(chosen), list(sc), sources, stages, reasons)


def similar(rec, item_id: str, k: int = 10) -> list[dict]:
    """Items most like `item_id` (two-tower cosine; attribute-based vectors for items added after
    training). Unknown id -> UnknownItem (a 404 in the service). Blocked/unavailable items are skipped."""
    _, k, _ = rec._check("similar", k, ())
    if not isinstance(item_id, str) or item_id not in rec.catalog.index:
        raise UnknownItem(f"unknown item {item_id!r}", "item_id")
    pos = rec.catalog.index[item_id]
    if rec._vectors is not None and rec._vectors[pos].any():
        scores, source = rec._vectors @ rec._vectors[pos], "two_tower"
        scores[~rec._vectors.any(axis=1)] = -np.inf
    else:  # no vector: same category, most trending first
        cats = rec.reranker.categories if rec.reranker.categories is not None else np.zeros(len(rec.catalog), int)
        scores, source = np.where(cats == cats[pos], rec.cold.trending[: len(cats)], -np.inf), "category"
    scores = scores.astype(np.float64)
    scores[[pos, *rec.blocklist.positions, *rec.unavailable.positions]] = -np.inf
    top = _top(scores, k)
    name = rec.explainer.name(pos)
    return [{"item_id": rec.catalog.item_ids[p], "score": float(scores[p]), "source": source,
             "stage": "similar", "reason": f"similar to {name}"} for p in top]


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
