"""The Recommender: retrieve -> filter -> rank -> re-rank, with a cold-start fallback and explanations.

This one object is built by the training pipeline, scored by the evaluation step (`recommend_batch`), saved
in the model bundle, run by batch inference and by the BentoML service (`recommend`, `similar_items`,
`record_feedback`), so what is evaluated offline is what is served: both entry points run the same
`_personal` / `_cold_slate` code under the same filters and re-ranking. The stages live in their own modules
(filters, context, rerank, cold_start, explain); this module orchestrates them. Its online state is the
`history` (what each user has done), the impression log, the blocklist and the unavailable set.
"""

from __future__ import annotations

import collections
import copy
import threading
import time

import numpy as np
import pandas as pd

from recsys.data.schema import ITEM_ID, USER_ID
from recsys.features.history import Catalog, History
from recsys.ranking.model import RankingModel
from recsys.retrieval.candidates import CandidateGenerator
from recsys.retrieval.sources import TwoTowerSource
from recsys.serving import feedback, persistence, stages
from recsys.serving.cold_start import ColdStart
from recsys.serving.compiled import compiled_predictor
from recsys.serving.config import resolve_config
from recsys.serving.context import ContextFilter, ParsedContext
from recsys.serving.errors import InvalidRequest
from recsys.serving.explain import Explainer
from recsys.serving.filters import ImpressionLog, ItemSet, SeenPolicy, event_type_of_weight, sorted_unique
from recsys.serving.rerank import Reranker, parse_rules
from recsys.serving.ranked import (
    UNCACHEABLE,
    Ranked,
    RankedCache,
    compute,
    feature_rows,
    pinned_store_rows,
    stamps_of_store,
)
from recsys.serving.stages import Slate, _timed

MAX_K = 1000
MAX_JOURNAL = 1_000_000  # feedback events kept for a hot-reload hand-over (~150 bytes each)
STAGES = ("filter", "retrieve", "rank", "rerank", "cold_start", "explain", "recommend")


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
        # Events applied by record_feedback, for adopt_online_state: compact tuples, the newest MAX_JOURNAL.
        self.journal: collections.deque = collections.deque(maxlen=MAX_JOURNAL)
        self._lock = threading.Lock()
        # Bumped when the models change in place (refit, trend refresh, new items): every cached ranked list
        # of this object and of its variants (which share the models) is then stale.
        self._models_epoch = [0]
        self._configure()
        self.ranked = self._new_cache()

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
        self._compiled = compiled_predictor(ranker) if self.config["compile_ranker"] else None
        e = self.config["explain"]
        self.explainer = Explainer(self.catalog, self.generator, ranker, event_type_of_weight(self.history.event_weights),
                                   self._vectors, e["factors"], e["history_items"], e["models"])
        self._cold_cache: dict = {}
        self._cold_pages: dict = {}  # (segment, context, exclusions, k) -> a cold-start page (stages.cold_slate)

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
            extra = {u: g.to_numpy() for u, g in frame[frame.p >= 0].groupby("u").p}
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
        return stages.similar(self, item_id, k)

    def record_feedback(self, events) -> dict:
        """Apply feedback (DataFrame / list of dicts: user_id, item_id, event_type, timestamp) to the online
        state: history (so the next recommend personalises on and filters it) and impression fatigue
        (engagement clears it; event_type "impression" adds to it). Returns counts."""
        return feedback.apply(self, events)

    def update_history(self, interactions: pd.DataFrame) -> None:
        """Add known interactions in bulk (batch inference, refresh): no validation, no journal."""
        self.history.add(interactions)
        if len(interactions):
            self.ranked.invalidate(pd.unique(interactions[USER_ID].astype(str)))

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
        self._cold_cache, self._cold_pages = {}, {}
        self.models_changed()

    def models_changed(self) -> None:
        """Drop every cached ranked list: call after changing the models in place (refresh_recommender
        refits the sources and item statistics, then refresh_trends calls this)."""
        self._models_epoch[0] += 1
        self.ranked.clear()

    def explain_deferred(self) -> int:
        """Explain the re-rank pool of the lists computed on request since the last call (they keep their
        feature rows until then), and deepen the explanations of lists a user is paging down (their rows
        are computed again): what makes a user's next pages cheap. Builds an explained copy and swaps it
        in, so a request reading the list meanwhile never sees it half updated. Returns how many."""
        done = 0
        for user, entry, depth in self.ranked.take_deferred():
            if self.ranked.get(user, entry.stamp) is not entry:
                continue
            pending = entry.pending
            if pending is None:  # a deepening (stages._serve): the list's feature rows again, same stamp
                self.ranked.counts["deepened"] += 1
                pending = feature_rows(self, user, self._seen(user))
            copy = Ranked(entry.positions, entry.scores, entry.origin, entry.stamp)
            copy.pending, copy.page = pending, entry.page
            rows = np.union1d(np.arange(min(depth, len(entry))), entry.explained)
            self.explainer.explain(copy, self.history, user, rows)
            copy.pending = None
            done += self.ranked.swap(user, entry, copy)
        return done

    def warm_order(self) -> list[str]:
        """Known users, most recently active first (the order a warm-up computes them in)."""
        users = self.history.users
        return [users[i] for i in np.argsort(-self.history.last_time(users), kind="stable")]

    def warm(self, user_ids=None, explain: bool = True, stop=None) -> int:
        """Compute and cache ranked candidates for known users without a cached list, in batches (the
        service runs this in the background after a load, and before a hot-reload swap): `user_ids` in
        order (default `warm_order()`), until the cache's memory budget is reached or `stop()` is true.
        With `explain`, the re-rank pool's explanations too. Returns how many lists were computed."""
        if not self.ranked.enabled:
            return 0
        self.explain_deferred()
        ids = self.warm_order() if user_ids is None else user_ids
        todo = [u for u in dict.fromkeys(map(str, ids)) if u in self.history and u not in self.ranked]
        depth = self._explain_depth(10) if explain and self.config["explain"]["enabled"] else 0
        done, size = 0, max(1, min(self.config["batch_size"], 64))
        for start in range(0, len(todo), size):
            if stop is not None and stop():
                break
            entries = self._ranked(todo[start:start + size], {}, warm_depth=depth)
            done += len(entries)
            if self.ranked.nbytes + max(e.nbytes for e in entries) * size > self.ranked.max_bytes:
                break
        return done

    def context_schema(self) -> dict[str, str]:
        """Accepted context keys and what they take (for API docs)."""
        return self.context_filter.describe()

    def variant(self, **config) -> Recommender:
        """A copy with other settings, e.g. `variant(rank=False, score_source="two_tower")` (retrieval-only
        baseline) or `variant(rerank={"mmr_weight": 0.3})`. Models and online state are shared."""
        other = copy.copy(self)
        other.config = resolve_config(config, self.config)
        other._configure()
        if other._entry_settings() != self._entry_settings():  # other ranked lists: a cache of its own
            other.ranked = other._new_cache()
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
        return sorted_unique(np.concatenate([self.seen.positions(self.history, user_id), explicit,
                                             self.blocklist.positions, self.unavailable.positions,
                                             self.impressions.fatigued(user_id, now)]).astype(np.int64))

    def _new_cache(self) -> RankedCache:
        c = self.config["cache"]
        return RankedCache(int(c["max_mb"] * 2**20), c["enabled"])

    def _entry_settings(self) -> tuple:
        """The settings a ranked list depends on (a variant differing in these keeps its own cache)."""
        c = self.config
        return (c["rank"], c["score_source"], c["filters"]["seen_event_types"], repr(c["explain"]),
                repr(c["cache"]), c["compile_ranker"])

    def _explain_depth(self, k: int) -> int:
        """Candidates explained per ranked list: the re-rank pool (or k) plus a margin."""
        return max(self.reranker.pool, k) + int(self.config["cache"]["explain_margin"])

    def _stamps(self, users) -> list:
        """What each user's ranked list is computed from: the models' epoch, the history length (histories
        only grow: any new event changes it) and the online feature row when the ranker reads one."""
        epoch, items = self._models_epoch[0], self.history.items
        store = stamps_of_store(self, users)
        return [(epoch, len(items(u)), s) for u, s in zip(users, store)]

    def _seen(self, user_id: str) -> np.ndarray:
        """The items retrieval skips for a user (sorted, unique): what the seen filter masks."""
        return np.unique(self.seen.positions(self.history, user_id)).astype(np.int64)

    def _ranked(self, users, timer, explain: bool = False, warm_depth: int = 0) -> list:
        """Each user's ranked candidates, from the cache when its stamp is current, else computed in
        batches of `batch_size` and cached: with their feature rows kept for the request to explain from
        (`explain`), or explained `warm_depth` deep (the warm-up)."""
        stamps = self._stamps(users)
        cache = self.ranked
        out = [cache.get(u, st) for u, st in zip(users, stamps)]
        missing = [r for r, e in enumerate(out) if e is None]
        cache.counts["hits"] += len(users) - len(missing)
        cache.counts["misses"] += len(missing)
        size = self.config["batch_size"]
        for start in range(0, len(missing), size):
            block = missing[start:start + size]
            epoch = cache.epoch
            entries = compute(self, [users[r] for r in block], [self._seen(users[r]) for r in block], timer,
                              warm_depth, [stamps[r] for r in block], keep_rows=explain)
            for r, entry in zip(block, entries):
                out[r] = entry
                if stamps[r][2] is not UNCACHEABLE:
                    cache.put(users[r], entry, epoch)
        return out

    def _personal(self, users, excluded, parsed: ParsedContext, k, timer, explain) -> list[Slate]:
        with pinned_store_rows(self, users):  # one online-store lookup per request, cache check included
            return stages.personal(self, users, excluded, parsed, k, timer, explain)

    def _cold_slate(self, user_id: str, k: int, excluded: np.ndarray, parsed: ParsedContext) -> Slate:
        return stages.cold_slate(self, user_id, k, excluded, parsed)

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


