"""The stages of the Recommender as functions over it: personal lists (retrieve -> context filter -> rank ->
re-rank -> explain), cold-start lists, similar items, and the small helpers they share.

recsys/serving/recommender.py holds the public API and the online state and calls these; they live apart so
each stays readable (the filter, re-rank, cold-start and explain logic itself is in its own module).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys.serving import ranked
from recsys.serving.cold_start import interleave
from recsys.serving.context import ParsedContext
from recsys.serving.errors import UnknownItem
from recsys.serving.explain import rule_text
from recsys.serving.ranked import Page
from recsys.serving.ranked import timed as _timed


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
    """Personal lists for known users: ranked candidates (cached, or computed in one batch for the users
    without a valid entry: recsys/serving/ranked.py) -> filter (excluded positions, context) -> re-rank ->
    explain. A user whose filters remove candidates and leave fewer than the re-rank pool gets a full
    computation instead, with the filters pushed into retrieval so the sources reach past what they remove.
    `recommend` and `recommend_batch` both run this, so single and batch answers agree by construction."""
    explain = bool(explain and rec.config["explain"]["enabled"])
    depth = rec._explain_depth(k) if explain else 0
    entries = rec._ranked(users, timer, explain=depth > 0)
    slates: list[Slate | None] = [None] * len(users)
    short = []
    for r, user in enumerate(users):
        slates[r] = _serve(rec, user, entries[r], excluded[r], parsed, k, timer, depth, None)
        if slates[r] is None:
            short.append(r)
    if short:  # the filters left too few: retrieve past them (not cached: it depends on this request)
        rec.ranked.counts["fallbacks"] += len(short)
        pushed = [_pushed_down(excluded[r], parsed.mask) for r in short]
        fresh = ranked.compute(rec, [users[r] for r in short], pushed, timer, keep_rows=depth > 0)
        for r, p, entry in zip(short, pushed, fresh):
            slates[r] = _serve(rec, users[r], entry, excluded[r], parsed, k, timer, depth, p)
    return slates


def _serve(rec, user, entry, excluded, parsed: ParsedContext, k, timer, depth, pushed) -> Slate | None:
    """Filter one user's ranked candidates, re-rank and explain (depth > 0) what remains. For a cached
    entry (`pushed` None) returns None when the filters removed candidates and fewer than the re-rank pool
    remain; `pushed`: the entry was computed with these exclusions (the fallback), serve what it has."""
    with _timed(timer, "filter"):
        removed = np.zeros(len(rec.catalog), dtype=bool)  # a catalogue mask: cheaper than np.isin here
        removed[excluded] = True
        keep = ~removed[entry.positions]
        if parsed.mask is not None:
            keep &= parsed.mask[entry.positions]
        idx = np.flatnonzero(keep)
    if pushed is None and len(idx) < len(entry) and len(idx) < max(k, rec.reranker.pool):
        entry.pending = None  # never leave feature rows on a cached entry
        return None
    allowed = _allowed_fn(excluded, parsed.mask)
    key = None
    if pushed is None:  # the page is a function of the pool that survived the filters: memoised per list
        pool = idx[: max(k, rec.reranker.pool)]
        pins = tuple((allowed(r.position), int(np.argmax(entry.positions[idx] == r.position))
                      if (entry.positions[idx] == r.position).any() else -1) for r in rec.reranker.pins)
        key = (k, pool.tobytes(), pins)
        page = entry.page
        if page is not None and page.key == key and (not depth or page.reasons is not None):
            with _timed(timer, "rerank"):
                slate = Slate(list(page.positions), list(page.scores), list(page.sources), list(page.stages),
                              list(page.reasons) if depth else [rule_text(lb) for lb in page.labels])
            entry.pending = None
            return slate
    stage = "ranked" if rec.ranking is not None and rec.config["rank"] else "retrieved"
    names = [s.name for s in rec.generator.sources]
    with _timed(timer, "rerank"):
        pos, sc, labels, at = rec.reranker.rerank(entry.positions[idx], entry.scores[idx], k,
                                                  allowed, return_index=True)
        rows = np.where(at >= 0, idx[np.maximum(at, 0)], -1)  # each item's index in the entry (-1: a rule's)
        sources = [names[o] if j >= 0 else "rule" for j, o in zip(rows.tolist(), entry.origin[rows].tolist())]
        slate = Slate([int(p) for p in pos], list(sc), sources,
                      ["pinned" if lb.startswith("pin:") else stage for lb in labels], list(labels))
    if depth:
        with _timed(timer, "explain", len(slate.positions)):
            missing = entry.unexplained(rows)
            if len(missing):
                passed = entry.pending is None
                if passed:  # a cached entry without its feature rows: one more pass for them
                    rec.ranked.counts["explain_passes"] += 1
                    exclusions = pushed if pushed is not None else rec._seen(user)
                    entry.pending = ranked.feature_rows(rec, user, exclusions)
                extra = np.empty(0, np.int64)
                if passed and pushed is None:  # the feature rows are paid for: explain well past this page
                    extra = np.arange(min(max(depth, explain_reach(rec, rows, k)), len(entry)))
                rec.explainer.explain(entry, rec.history, user, np.union1d(missing, extra))
                if not passed and pushed is None:
                    # Computed for this request: the rest of the re-rank pool is explained off the request
                    # path from the kept rows (Recommender.explain_deferred, the service's warm-up thread).
                    rec.ranked.defer(user, entry, depth)
            if entry.pending is not None and (pushed is not None or not rec.ranked.is_deferred(entry)):
                entry.pending = None  # feature rows stay only with a list waiting for its explanations
            slate.reasons = rec.explainer.reasons(entry, rows, sources, labels)
            if (pushed is None and entry.pending is None and rec.config["cache"]["explain_ahead"]
                    and len(entry.explained) < len(entry) and int(rows.max()) + 1 + 2 * k > len(entry.explained)):
                # Paging towards the end of what is explained (impression fatigue moves a user's page down
                # the list): explain deeper off the request path (Recommender.explain_deferred, the
                # service's warm-up thread), so the next pages need no pass on a request.
                rec.ranked.defer(user, entry, explain_reach(rec, rows, k))
    else:
        slate.reasons = [rule_text(lb) for lb in labels]
    if key is not None:
        entry.page = Page(key, tuple(slate.positions), tuple(slate.scores), tuple(slate.sources),
                          tuple(slate.stages), tuple(labels), tuple(slate.reasons) if depth else None)
        rec.ranked.resize(user, entry)
    return slate


def explain_reach(rec, rows: np.ndarray, k: int) -> int:
    """How deep a list is explained once its feature rows are paid for: past the deepest item chosen
    (`rows`, indices into the list) by three re-rank pools (or two pages and a pool, for a large k), so
    a user paging deeper pays again after ~9 pages instead of every ~3. The whole list costs more than it
    saves (~2.5 ms more a pass on the 10k bench)."""
    return int(rows.max()) + 1 + max(3 * rec.reranker.pool, 2 * k + rec.reranker.pool)


def _pushed_down(excluded: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """Everything a request filters, as sorted positions for retrieval to skip."""
    if mask is None:
        return excluded
    return np.union1d(excluded, np.flatnonzero(~mask))


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
    segment = {**rec.cold.segment_of(user_id), **parsed.segment}
    # A function of the segment, the context, the exclusions and k: kept (bounded) like the lists below,
    # so a visitor's page costs a lookup; the exclusions (blocklist, fatigue, ...) are part of the key.
    key = (tuple(sorted(segment.items())), parsed.key, np.asarray(excluded, dtype=np.int64).tobytes(), k)
    page = rec._cold_pages.get(key)
    if page is not None:
        return Slate(*(list(part) for part in page))
    trend, text, content, content_text = cold_lists(rec, segment)
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
    if len(rec._cold_pages) < 4096:
        rec._cold_pages[key] = (tuple(int(p) for p in chosen), tuple(sc), tuple(sources), tuple(stages),
                                tuple(reasons))
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
