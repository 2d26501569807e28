"""The Recommender's stage objects, built from its settings and models; its warm-up and similar items.

recsys/serving/recommender.py orchestrates the stages; this module wires them (`configure`: at construction,
for a `variant` with other settings, after `add_items` grows the catalogue). Each stage gets the shared
state it reads by reference -- the history, the impression log, the blocked and unavailable sets, the cache
-- and the stages it calls through their public methods, so no stage reaches into the Recommender.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.serving.cold_start import ColdLists, top
from recsys.serving.compiled import compiled_predictor
from recsys.serving.context import ContextFilter
from recsys.serving.errors import UnknownItem
from recsys.serving.explain import Explainer, ExplainStage
from recsys.serving.filters import Filters, SeenPolicy, event_type_of_weight
from recsys.serving.lists import RankedLists
from recsys.serving.rerank import Pages, Reranker, parse_rules


def configure(rec) -> None:
    """Set `rec`'s configuration-derived objects and stages: context_filter, seen, reranker, explainer,
    filters, lists (over rec.ranked), pages, explaining, cold_lists."""
    two_tower = rec._two_tower()
    rec._vectors = two_tower.item_vectors(rec.catalog) if two_tower is not None else None
    users = {**{a: [] for a in (two_tower.user_attributes if two_tower else [])}, **rec.cold.values()}
    rec.context_filter = ContextFilter(rec.catalog.attributes, users)
    rec.seen = SeenPolicy(rec.history.event_weights, rec.config["filters"]["seen_event_types"])
    r, attrs = rec.config["rerank"], rec.catalog.attributes
    vectors = rec._vectors if r["similarity"] in ("auto", "embedding") else None
    if r["similarity"] == "embedding" and vectors is None:
        raise ValueError("rerank.similarity 'embedding' needs a two-tower source")
    categories = None
    if r["similarity"] == "category" or (r["similarity"] == "auto" and vectors is None):
        if r["category_column"] in attrs.columns:
            categories = pd.factorize(attrs[r["category_column"]])[0]
    rules = parse_rules(rec.config["rules"], rec.context_filter, rec.catalog.index)
    rec.reranker = Reranker(r["mmr_weight"], r["pool"], rules, vectors, categories)
    ranker = rec.ranking.ranker if rec.ranking is not None else None
    compiled = compiled_predictor(ranker) if rec.config["compile_ranker"] else None
    e = rec.config["explain"]
    rec.explainer = Explainer(rec.catalog, rec.generator, ranker, event_type_of_weight(rec.history.event_weights),
                              rec._vectors, e["factors"], e["history_items"], e["models"])
    rec.filters = Filters(rec.seen, rec.history, rec.blocklist, rec.unavailable, rec.impressions, rec.catalog)
    rec.lists = RankedLists(rec.catalog, rec.generator, rec.ranking, rec.history, rec.config,
                            rec.filters.seen_positions, compiled, rec.explainer.contributions, rec.ranked,
                            rec._models_epoch)
    ranked = rec.ranking is not None and rec.config["rank"]
    rec.pages = Pages(rec.reranker, [s.name for s in rec.generator.sources], "ranked" if ranked else "retrieved")
    rec.explaining = ExplainStage(rec.explainer, rec.lists, rec.filters.seen_positions, rec.history,
                                  rec.reranker.pool, rec.config["cache"])
    rec.cold_lists = ColdLists(rec.cold, rec.reranker, rec.config["cold_start"], two_tower, rec._vectors)


def similar_items(rec, item_id: str, k: int) -> list[dict]:
    """Items most like `item_id` (two-tower cosine; attribute-based vectors for items added after training;
    else the same category, most trending first). Unknown id -> UnknownItem. Blocked/unavailable skipped."""
    if not isinstance(item_id, str) or item_id not in rec.catalog.index:
        raise UnknownItem(f"unknown item {item_id!r}", "item_id")
    pos, vectors = rec.catalog.index[item_id], rec._vectors
    if vectors is not None and vectors[pos].any():
        scores, source = vectors @ vectors[pos], "two_tower"
        scores[~vectors.any(axis=1)] = -np.inf
    else:  # no vector: same category, most trending first
        cats = rec.reranker.categories
        cats = cats if cats is not None else np.zeros(len(rec.catalog), int)
        scores, source = np.where(cats == cats[pos], rec.cold.trending[: len(cats)], -np.inf), "category"
    scores = scores.astype(np.float64)
    scores[[pos, *rec.blocklist.positions, *rec.unavailable.positions]] = -np.inf
    name = rec.explainer.name(pos)
    return [{"item_id": rec.catalog.item_ids[p], "score": float(scores[p]), "source": source,
             "stage": "similar", "reason": f"similar to {name}"} for p in top(scores, k)]


def warm(rec, user_ids, explain: bool, stop, depth: int | None) -> int:
    """Recommender.warm: the users' ranked lists computed in blocks (state sync -> retrieve + rank, the
    first `depth` candidates the filters leave today explained before caching), until the cache is full."""
    if not rec.ranked.enabled:
        return 0
    rec.explain_deferred()
    ids = rec.warm_order() if user_ids is None else user_ids
    todo = [u for u in dict.fromkeys(map(str, ids)) if u in rec.history and u not in rec.ranked]
    if depth is None:
        depth = rec.explaining.depth(10) if explain and rec.config["explain"]["enabled"] else 0
    done, size, empty = 0, max(1, min(rec.config["batch_size"], 64)), np.empty(0, np.int64)
    for start in range(0, len(todo), size):
        if stop is not None and stop():
            break
        block, now = todo[start:start + size], rec.clock()

        def explain_first(users, entries):
            excluded = [rec.filters.excluded(u, empty, now) for u in users]
            rec.explaining.warm(users, entries, excluded, depth)

        with rec.state.sync(block, rec._store_features()) as stamps:
            entries = rec.lists.ranked(block, stamps, {}, keep_rows=depth > 0,
                                       prepare=explain_first if depth > 0 else None)
        done += len(entries)
        if rec.ranked.nbytes + max(e.nbytes for e in entries) * size > rec.ranked.max_bytes:
            break
    return done
