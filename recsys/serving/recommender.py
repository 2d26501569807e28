"""The Recommender: state sync -> retrieve -> rank -> filter -> re-rank -> explain, with a cold-start fallback.

This one object is built by the training pipeline, scored by the evaluation step (`recommend_batch`), saved
in the model bundle, run by batch inference and by the BentoML service (`recommend`, `similar_items`,
`record_feedback`), so what is evaluated offline is what is served: both entry points run `_answer`.

It is the orchestrator: `_answer` calls each stage once, top-down, for a block of users, and each stage owns
its state behind public methods:
  1. state sync   (recsys/serving/state.py, `state`): the users' history and impressions brought up to
     date (the event log, or the online store row read once), the store-feature rows pinned for ranking;
  2. filter       (filters.py, `filters`): what each user must not get (seen, excluded, blocked, unavailable,
     fatigued), then which of their ranked candidates survive it and the request context;
  3. retrieve + rank, with the cache (lists.py, `lists` over `ranked`): each user's ranked candidates;
  4. re-rank      (rerank.py, `pages`): MMR, rules and pins over the head of what the filters kept;
  5. explain      (explain.py, `explaining`): reasons for the chosen items;
  6. cold start   (cold_start.py, `cold_lists`): unknown users, and the top-up of short lists.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import pandas as pd

from recsys.data.schema import ITEM_ID, USER_ID
from recsys.features.history import Catalog, History
from recsys.ranking.model import RankingModel
from recsys.retrieval.candidates import CandidateGenerator
from recsys.retrieval.sources import TwoTowerSource
from recsys.serving import persistence, stages
from recsys.serving.cold_start import ColdStart
from recsys.serving.config import resolve_config
from recsys.serving.context import ParsedContext
from recsys.serving.errors import InvalidRequest
from recsys.serving.explain import rule_text
from recsys.serving.filters import Filters, ImpressionLog, ItemSet
from recsys.serving.ranked import RankedCache
from recsys.serving.slate import Slate
from recsys.serving.state import OnlineState

MAX_K = 1000
STAGES = ("state", "filter", "retrieve", "rank", "rerank", "cold_start", "explain", "recommend")


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
        self.state = OnlineState(history, self.impressions)  # shared with variants, carried over on reload
        # Bumped when the models change in place (refit, trend refresh, new items): every cached ranked list
        # of this object and of its variants (which share the models) is then stale.
        self._models_epoch = [0]
        self.ranked = self._new_cache()
        self._configure()

    def _configure(self) -> None:
        """The stages, from config and catalogue (rebuilt by variant() and add_items())."""
        stages.configure(self)

    # ---- public API ----
    def recommend(self, user_id: str, k: int = 10, exclude=(), context: dict | None = None) -> list[dict]:
        """Top-k for one user: dicts with item_id, score, source, stage, reason. Records the impressions."""
        t0, timer = time.perf_counter(), {}
        user_id, k, explicit = self._check(user_id, k, exclude)
        parsed = self.context_filter.parse(context)
        self.blocklist.maybe_reload()
        now = self.clock()
        slate = self._answer([user_id], [explicit], parsed, k, now, timer, explain=True)[0]
        if self.config["filters"]["record_impressions"]:
            self.impressions.record(user_id, slate.positions, now)
        ids = self.catalog.item_ids
        out = [{"item_id": ids[p], "score": float(s), "source": src, "stage": st, "reason": r}
               for p, s, src, st, r in zip(slate.positions, slate.scores, slate.sources, slate.stages, slate.reasons)]
        timer["recommend"] = (time.perf_counter() - t0, len(out))
        if self.observer is not None:
            for stage, (seconds, n) in timer.items():
                self.observer(stage, seconds, n)
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
        unique, slates, size = list(dict.fromkeys(user_ids)), {}, self.config["batch_size"]
        for start in range(0, len(unique), size):
            block = unique[start:start + size]
            answers = self._answer(block, [extra.get(u, empty) for u in block], none, k, now, {}, explain=False)
            slates.update(zip(block, answers))
        columns = ["user_id", "rank", "item_id", "score", "source", "stage"]
        rows = [pd.DataFrame({"user_id": u, "rank": np.arange(1, len(s.positions) + 1),
                              "item_id": self.catalog.item_ids[np.asarray(s.positions, dtype=np.int64)],
                              "score": np.asarray(s.scores, dtype=np.float64), "source": s.sources,
                              "stage": s.stages}) for u, s in ((u, slates[u]) for u in user_ids)]
        return pd.concat(rows, ignore_index=True)[columns] if rows else pd.DataFrame(columns=columns)

    def similar_items(self, item_id: str, k: int = 10) -> list[dict]:
        """Items most like `item_id` (two-tower cosine; attribute-based vectors for items added after
        training). Unknown id -> UnknownItem (a 404 in the service). Blocked/unavailable items are skipped."""
        _, k, _ = self._check("similar", k, ())
        return stages.similar_items(self, item_id, k)

    def record_feedback(self, events) -> dict:
        """Apply feedback (DataFrame / list of dicts: user_id, item_id, event_type, optional timestamp and
        event_id) to the online state: history (so the next recommend personalises on and filters it) and
        impression fatigue (engagement clears it; event_type "impression" adds to it). An event whose
        event_id was applied already, or which the loaded bundle holds already, changes nothing. Returns
        counts: applied, unknown_items, impressions."""
        counts, changed = self.state.apply(events, self.clock())
        if changed:
            self.ranked.invalidate(changed)  # their ranked lists read the old history
        return counts

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
        self.cold_lists.clear()
        self.models_changed()

    def models_changed(self) -> None:
        """Drop every cached ranked list: call after changing the models in place (refresh_recommender
        refits the sources and item statistics, then refresh_trends calls this)."""
        self.lists.models_changed()

    def explain_deferred(self) -> int:
        """Explain the lists queued off the request path (explain.ExplainStage.deferred): what makes a
        user's next pages cheap. The service's warm-up thread runs it. Returns how many."""
        return self.explaining.deferred()

    def warm_order(self) -> list[str]:
        """Known users, most recently active first (the order a warm-up computes them in)."""
        users = self.history.users
        return [users[i] for i in np.argsort(-self.history.last_time(users), kind="stable")]

    def warm(self, user_ids=None, explain: bool = True, stop=None, depth: int | None = None) -> int:
        """Compute and cache ranked candidates for known users without a cached list, in batches (the
        service runs this in the background after a load, and before a hot-reload swap): `user_ids` in
        order (default `warm_order()`), until the cache's memory budget is reached or `stop()` is true.
        With `explain`, the re-rank pool's explanations too (or `depth` candidates). Returns how many."""
        return stages.warm(self, user_ids, explain, stop, depth)

    def ranked_list(self, user_id: str):
        """The user's cached ranked candidates (recsys.serving.ranked.Ranked) when current, else None."""
        with self.state.sync([user_id], self._store_features()) as stamps:
            return self.ranked.get(user_id, self.lists.stamps([user_id], stamps)[0])

    def context_schema(self) -> dict[str, str]:
        """Accepted context keys and what they take (for API docs)."""
        return self.context_filter.describe()

    def variant(self, **config) -> Recommender:
        """A copy with other settings, e.g. `variant(rank=False, score_source="two_tower")` (retrieval-only
        baseline) or `variant(rerank={"mmr_weight": 0.3})`. Models and online state are shared."""
        other = copy.copy(self)
        other.config = resolve_config(config, self.config)
        if other._entry_settings() != self._entry_settings():  # other ranked lists: a cache of its own
            other.ranked = other._new_cache()
        other._configure()
        return other

    def adopt_online_state(self, previous: Recommender) -> None:
        """Carry a running service's online state over to this newly loaded bundle (hot reload): blocked
        and unavailable items, impressions, and feedback events newer than this bundle's history."""
        persistence.adopt_online_state(self, previous)

    @property
    def journal(self):
        """Events applied since load (the hot-reload hand-over): (user, item, event_type, seconds, event_id)."""
        return self.state.journal

    def save(self, path):
        return persistence.save(self, path)

    @classmethod
    def load(cls, path) -> Recommender:
        return persistence.load(cls, path)

    # ---- the orchestrator ----
    def _answer(self, users, explicit, parsed: ParsedContext, k, now, timer, explain) -> list[Slate]:
        """A block of users (known or not) through every stage, each called once for all of them."""
        with self.state.sync(users, self._store_features(), timer) as store_stamps:  # 1. state sync
            started = time.perf_counter()  # 2. filter: what each user must not get
            excluded = [self.filters.excluded(u, x, now) for u, x in zip(users, explicit)]
            _lap(timer, "filter", started)
            slates = [Slate() for _ in users]
            known = [r for r, u in enumerate(users) if u in self.history]
            if known:
                personal = self._personal([users[r] for r in known], [excluded[r] for r in known],
                                          [store_stamps[r] for r in known], parsed, k, timer, explain)
                for r, slate in zip(known, personal):
                    slates[r] = slate
        short = [r for r, s in enumerate(slates) if len(s.positions) < k]
        if short:  # 6. cold start: unknown users, and lists the filters left short
            started, n_items = time.perf_counter(), len(self.catalog)
            for r in short:
                taken = np.union1d(excluded[r], np.asarray(slates[r].positions, dtype=np.int64))
                more = self.cold_lists.slate(users[r], k - len(slates[r].positions), taken, parsed, n_items)
                slates[r].extend(more)
            _lap(timer, "cold_start", started)
        return slates

    def _personal(self, users, excluded, store_stamps, parsed: ParsedContext, k, timer, explain) -> list[Slate]:
        """Personal lists for known users. A user whose filters remove candidates and leave fewer than the
        re-rank pool gets a full computation instead, with the filters pushed into retrieval."""
        explain = bool(explain and self.config["explain"]["enabled"])
        entries = self.lists.ranked(users, store_stamps, timer, keep_rows=explain)  # 3. retrieve + rank
        started, mask = time.perf_counter(), parsed.mask  # 2. (cont.) what survives the filters and the context
        kept = [self.filters.keep(e.positions, x, mask) for e, x in zip(entries, excluded)]
        _lap(timer, "filter", started)
        pool, pushed = max(k, self.reranker.pool), [None] * len(users)
        short = [r for r, (e, idx) in enumerate(zip(entries, kept)) if len(idx) < len(e) and len(idx) < pool]
        if short:  # the filters left too few: retrieve past them (not cached: it depends on this request)
            for r in short:
                entries[r].pending = None  # never leave feature rows on a cached entry
            pushes = [Filters.pushed(excluded[r], mask) for r in short]
            fresh = self.lists.fallback([users[r] for r in short], pushes, timer, keep_rows=explain)
            for r, p, entry in zip(short, pushes, fresh):
                entries[r], pushed[r], kept[r] = entry, p, self.filters.keep(entry.positions, excluded[r], mask)
        started = time.perf_counter()  # 4. re-rank (the list's last page when the filters left the same head)
        picks = [self.pages.pick(e, idx, k, Filters.allowed(x, mask), p is None, explain)
                 for e, idx, x, p in zip(entries, kept, excluded, pushed)]
        started = _lap(timer, "rerank", started)
        for user, entry, pick, p in zip(users, entries, picks, pushed):  # 5. explain
            if pick.memo:  # the same page as last time: complete
                continue
            if explain:
                self.explaining.explain(user, entry, pick, p, k)
            else:
                pick.slate.reasons = [rule_text(lb) for lb in pick.labels]
            if pick.key is not None:
                self.lists.keep_page(user, entry, pick.page(explain))
        if explain:
            _lap(timer, "explain", started, sum(len(p.slate.positions) for p in picks if not p.memo))
        return [pick.slate for pick in picks]

    # ---- helpers ----
    def _check(self, user_id, k, exclude):
        if isinstance(user_id, bool) or not isinstance(user_id, (str, int)) or not str(user_id):
            raise InvalidRequest(f"user_id must be a non-empty string, got {user_id!r}", "user_id")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= MAX_K:
            raise InvalidRequest(f"k must be an integer in [1, {MAX_K}], got {k!r}", "k")
        if isinstance(exclude, (str, bytes)) or not all(isinstance(i, str) for i in exclude):
            raise InvalidRequest("exclude must be a list of item id strings", "exclude")
        pos = self.catalog.positions(list(exclude))
        return str(user_id), int(k), pos[pos >= 0]

    def _store_features(self):
        """The ranker's store-feature provider when this configuration ranks with it (else None)."""
        if self.ranking is None or not self.config["rank"]:
            return None
        return getattr(self.ranking.features, "store", None)

    def _new_cache(self) -> RankedCache:
        c = self.config["cache"]
        return RankedCache(int(c["max_mb"] * 2**20), c["enabled"])

    def _entry_settings(self) -> tuple:
        """The settings a ranked list depends on (a variant differing in these keeps its own cache)."""
        c = self.config
        return (c["rank"], c["score_source"], c["filters"]["seen_event_types"], repr(c["explain"]),
                repr(c["cache"]), c["compile_ranker"])

    def _unavailable_attribute(self) -> list[str]:
        return persistence.unavailable_attribute(self)

    def _two_tower(self) -> TwoTowerSource | None:
        return next((s for s in self.generator.sources if isinstance(s, TwoTowerSource)), None)


def _lap(timer: dict, stage: str, started: float, n: int = 0) -> float:
    """Add the time since `started` (and an item count) to timer[stage]; returns now (recsys.serving.lists
    has the same for its two stages: the orchestrator's own, so timing a stage costs no call into another
    module)."""
    now = time.perf_counter()
    seconds, count = timer.get(stage, (0.0, 0))
    timer[stage] = (seconds + now - started, count + n)
    return now
