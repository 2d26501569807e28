"""Explanations: the short `reason` text on every recommended item.

Built only for the k items returned (after re-ranking), from three things the stages already hold:
- the anchor: the item in the user's recent history that most supports the candidate under the source that
  proposed it (EASE weight for item_item, co-visit rate for co_visitation, vector cosine for two_tower), so
  the text can say "similar to h0042 you booked";
- the ranker's top feature contributions for that row (decision-path attribution, `PathContributions`),
  averaged over the ranker's seed models;
- the stage and any business rule that placed the item (pinned, boosted, cold start segment).

`ExplainStage` is the stage as a request runs it: it explains the chosen items of a list from the feature
rows the rank stage kept (a list computed on this request) or, for a cached list whose explanations do not
reach the page, from rows computed again (an "explanation pass", counted); the rest of a fresh list's
re-rank pool is explained off the request path (`deferred`, the service's warm-up thread runs it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.serving.contributions import PathContributions
from recsys.serving.ranked import Ranked

VERBS = {"view": "viewed", "click": "clicked", "add_to_cart": "added to your cart", "booking": "booked",
         "purchase": "bought", "rating": "rated"}
SOURCE_PHRASES = {"item_item": "often chosen together with what you liked",
                  "co_visitation": "often viewed next to what you viewed",
                  "two_tower": "matches your taste profile", "popular": "trending now"}
NAME_COLUMNS = ("title", "name")


class Explainer:
    """Reason texts for a Recommender's final lists (see module docstring)."""

    def __init__(self, catalog, generator, ranker, event_names: dict[float, str], vectors=None,
                 n_factors: int = 2, n_history: int = 20, n_models: int | None = None):
        self.catalog, self.ranker, self.event_names = catalog, ranker, event_names
        self.n_factors, self.n_history, self.n_models = int(n_factors), int(n_history), n_models
        self.sources = {s.name: s for s in generator.sources}
        self.source_list = list(generator.sources)
        self.contributions = PathContributions(ranker) if ranker is not None else None
        self.vectors = vectors
        attrs = catalog.attributes
        self.names = next((attrs[c].astype(str).to_numpy() for c in NAME_COLUMNS if c in attrs.columns), None)
        self._covered: dict[str, np.ndarray] = {}

    def name(self, pos: int) -> str:
        return str(self.names[pos]) if self.names is not None and pos < len(self.names) else str(self.catalog.item_ids[pos])

    def _support(self, source, hist: np.ndarray, items: np.ndarray) -> np.ndarray | None:
        """[len(hist), len(items)] how much each history item supports each candidate under `source`."""
        kind = type(source).__name__
        if kind == "ItemItemSource" and source.B is not None:
            cov = self._covered.get(source.name)
            if cov is None or len(cov) != len(self.catalog):
                cov = np.full(len(self.catalog), -1, dtype=np.int64)
                cov[source.covered] = np.arange(len(source.covered))
                self._covered[source.name] = cov
            h, i = cov[hist], cov[items]
            out = np.zeros((len(hist), len(items)), dtype=np.float32)
            ok_h, ok_i = h >= 0, i >= 0
            out[np.ix_(ok_h, ok_i)] = source.B[np.ix_(h[ok_h], i[ok_i])]
            return out
        if kind == "CoVisitationSource" and source.C is not None:
            # C[hist][:, items] read from the CSR arrays (scipy's fancy indexing builds two matrices, ~0.2 ms)
            C = source.C
            n = C.shape[0]
            out = np.zeros((len(hist), len(items)), dtype=np.float32)
            rows = np.flatnonzero(hist < n)
            starts, ends = C.indptr[hist[rows]], C.indptr[hist[rows] + 1]
            lengths = ends - starts
            at = np.repeat(starts - np.r_[0, np.cumsum(lengths)[:-1]], lengths) + np.arange(lengths.sum())
            col_of = np.full(n, -1, dtype=np.int64)
            ok_i = np.flatnonzero(items < n)
            col_of[items[ok_i]] = ok_i
            j = col_of[C.indices[at]]
            keep = j >= 0
            out[np.repeat(rows, lengths)[keep], j[keep]] = C.data[at][keep]
            return out
        if self.vectors is not None and kind in ("TwoTowerSource", "ItemItemSource", "CoVisitationSource"):
            return self.vectors[hist] @ self.vectors[items].T
        return None

    def anchors(self, history, user_id: str, positions: np.ndarray, origins: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per item the recent history item that most supports it under the source that proposed it
        (`origins`: index into the generator's sources): (catalogue position, -1 = none; that history
        entry's event weight, which names the verb: "you booked")."""
        hist = history.items(user_id)[-self.n_history:]
        weights = history._w.get(user_id, np.empty(0))[-self.n_history:]  # read-only use of the history
        anchor, weight = np.full(len(positions), -1, dtype=np.int32), np.zeros(len(positions))
        if not len(hist) or not len(positions):
            return anchor, weight
        recency = np.linspace(0.9, 1.0, len(hist))[:, None]  # ties go to the most recent item
        for k in np.unique(origins):
            cols = np.flatnonzero(origins == k)
            source = self.source_list[k] if 0 <= k < len(self.source_list) else None
            support = self._support(source, hist, positions[cols]) if source is not None else None
            if support is None:
                continue
            best = np.argmax(support * recency, axis=0)
            hit = support[best, np.arange(len(cols))] > 0
            anchor[cols[hit]] = hist[best[hit]]
            weight[cols[hit]] = weights[best[hit]]
        return anchor, weight

    def anchor_text(self, position: int, weight: float) -> str | None:
        if position < 0:
            return None
        verb = VERBS.get(self.event_names.get(float(weight), ""), "interacted with")
        return f"similar to {self.name(int(position))} you {verb}"

    def factor_arrays(self, X=None, leaves=None) -> tuple[np.ndarray, np.ndarray] | None:
        """Per row the `n_factors` largest feature contributions (feature index, value), from the feature
        rows X or (cheaper) the rows' leaf indices kept by the rank stage; None without a ranker."""
        n = len(leaves[0]) if leaves is not None else (0 if X is None else len(X))
        if self.ranker is None or self.n_factors <= 0 or (X is None and leaves is None):
            return None
        if not n:
            return np.empty((0, self.n_factors), np.int16), np.empty((0, self.n_factors))
        if leaves is not None:
            contrib = self.contributions.from_leaves(leaves)
        else:
            X = X[self.ranker.feature_names].to_numpy(dtype=np.float64) if isinstance(X, pd.DataFrame) else X
            contrib = self.contributions(X, self.n_models)
        top = np.argsort(-contrib, axis=1)[:, : self.n_factors]
        return top.astype(np.int16), np.take_along_axis(contrib, top, 1)

    def factor_text(self, index: np.ndarray, value: np.ndarray) -> str:
        names = self.ranker.feature_names
        top = [(names[j], v) for j, v in zip(index, value) if v > 0]
        return "top factors: " + ", ".join(f"{name} {v:+.2f}" for name, v in top) if top else ""

    def factors(self, X=None, leaves=None) -> list[str]:
        """Per row "top factors: a +0.31, b +0.12" from the ranker's positive contributions."""
        arrays = self.factor_arrays(X, leaves)
        n = len(leaves[0]) if leaves is not None else (0 if X is None else len(X))
        return [""] * n if arrays is None else [self.factor_text(i, v) for i, v in zip(*arrays)]

    def explain(self, entry, history, user_id: str, rows: np.ndarray) -> None:
        """Add explanations for candidates `rows` of a ranked entry (recsys.serving.ranked.Ranked) from its
        `pending` feature rows: anchors always, factors when the ranker scored them. Rows already explained
        are skipped; the entry keeps them sorted by candidate index."""
        self.explain_many([entry], history, [user_id], [rows])

    def explain_many(self, entries, history, user_ids, rows_per_entry) -> None:
        """`explain` for many entries, with one contribution pass over all their rows (the warm-up)."""
        todo = [(e, u, e.unexplained(np.asarray(rows, dtype=np.int64)))
                for e, u, rows in zip(entries, user_ids, rows_per_entry)]
        todo = [(e, u, rows) for e, u, rows in todo if len(rows)]
        if not todo:
            return
        Xs = [e.pending[0][rows] if e.pending is not None and e.pending[0] is not None
              and not isinstance(e.pending[0], pd.DataFrame) else None for e, _, rows in todo]
        leaves = [[lv[rows] for lv in e.pending[1]] if e.pending is not None and e.pending[1] is not None
                  else None for e, _, rows in todo]
        if all(x is not None for x in Xs):  # one pass for all: the usual case
            arrays = self.factor_arrays(np.concatenate(Xs), None)
            cuts = np.cumsum([len(x) for x in Xs])[:-1]
            parts = list(zip(np.split(arrays[0], cuts), np.split(arrays[1], cuts))) if arrays else [None] * len(todo)
        elif all(lv is not None for lv in leaves):
            parts = [self.factor_arrays(None, lv) for lv in leaves]
        else:  # a DataFrame feature provider, or no ranker
            parts = []
            for e, _, rows in todo:
                X = e.pending[0] if e.pending is not None else None
                parts.append(self.factor_arrays(None if X is None else X.iloc[rows], None))
        for (entry, user_id, rows), arrays in zip(todo, parts):
            positions = entry.positions[rows].astype(np.int64)
            anchor, weight = self.anchors(history, user_id, positions, entry.origin[rows])
            explained = np.concatenate([entry.explained, rows.astype(np.int32)])
            order = np.argsort(explained, kind="stable")
            entry.explained = explained[order]
            entry.anchor = np.concatenate([entry.anchor, anchor])[order]
            entry.anchor_weight = np.concatenate([entry.anchor_weight, weight])[order]
            if arrays is not None:
                width = arrays[0].shape[1]
                old_i = entry.factor_index if entry.factor_index is not None else np.empty((0, width), np.int16)
                old_v = entry.factor_value if entry.factor_value is not None else np.empty((0, width))
                entry.factor_index = np.concatenate([old_i, arrays[0]])[order]
                entry.factor_value = np.concatenate([old_v, arrays[1]])[order]

    def reasons(self, entry, rows: np.ndarray, sources: list[str], labels) -> list[str]:
        """Reason texts for chosen items: `rows` are their indices in `entry` (-1: placed by a rule, not a
        candidate), all explained already."""
        at = np.searchsorted(entry.explained, rows).clip(0, max(len(entry.explained) - 1, 0))
        anchors, weights = entry.anchor[at].tolist(), entry.anchor_weight[at].tolist()  # Python scalars:
        if entry.factor_index is not None:  # formatting numpy scalars one by one costs several times more
            f_index, f_value = entry.factor_index[at].tolist(), entry.factor_value[at].tolist()
        out = []
        for n, (j, source, label) in enumerate(zip(rows.tolist(), sources, labels)):
            anchor = factor = None
            if j >= 0:
                anchor = self.anchor_text(anchors[n], weights[n])
                if entry.factor_index is not None:
                    factor = self.factor_text(f_index[n], f_value[n])
            parts = [anchor or SOURCE_PHRASES.get(source, f"proposed by {source}"), factor, rule_text(label)]
            out.append("; ".join(p for p in parts if p))
        return out


class ExplainStage:
    """The explain stage of a Recommender: reasons for the items a page chose (`explain`), a warm-up's
    explanations (`warm`), and the explanations queued off the request path (`deferred`). `lists` is the
    retrieve + rank stage (recsys/serving/lists.py: feature rows computed again, the cache's queue);
    `seen(user)` the positions retrieval skipped for a list."""

    def __init__(self, explainer: Explainer, lists, seen, history, pool: int, cache_config: dict):
        self.explainer, self.lists, self.seen, self.history = explainer, lists, seen, history
        self.pool, self.margin = int(pool), int(cache_config["explain_margin"])
        self.ahead = bool(cache_config["explain_ahead"])

    def depth(self, k: int) -> int:
        """Candidates explained per ranked list: the re-rank pool (or k) plus a margin."""
        return max(self.pool, k) + self.margin

    def reach(self, rows: np.ndarray, k: int) -> int:
        """How deep a list is explained once its feature rows are paid for: past the deepest item chosen
        (`rows`, indices into the list) by three re-rank pools (or two pages and a pool, for a large k), so
        a user paging deeper pays again after ~9 pages instead of every ~3. The whole list costs more than it
        saves (~2.5 ms more a pass on the 10k bench)."""
        return int(rows.max()) + 1 + max(3 * self.pool, 2 * k + self.pool)

    def explain(self, user: str, entry: Ranked, pick, pushed, k: int) -> None:
        """Fill `pick.slate.reasons` (a page the re-rank stage chose from `entry`). `pushed`: the list was
        computed past this request's filters (the short-list fallback): explained for this request only."""
        rows, slate, cache, depth = pick.rows, pick.slate, self.lists.cache, self.depth(k)
        missing = entry.unexplained(rows)
        if len(missing):
            passed = entry.pending is None
            if passed:  # a cached entry without its feature rows: one more pass for them
                cache.counts["explain_passes"] += 1
                exclusions = pushed if pushed is not None else self.seen(user)
                entry.pending = self.lists.feature_rows(user, exclusions)
            extra = np.empty(0, np.int64)
            if passed and pushed is None:  # the feature rows are paid for: explain well past this page
                extra = np.arange(min(max(depth, self.reach(rows, k)), len(entry)))
            self.explainer.explain(entry, self.history, user, np.union1d(missing, extra))
            if not passed and pushed is None:
                # Computed for this request: the rest of the re-rank pool is explained off the request
                # path from the kept rows (`deferred`, the service's warm-up thread).
                cache.defer(user, entry, depth)
        if entry.pending is not None and (pushed is not None or not cache.is_deferred(entry)):
            entry.pending = None  # feature rows stay only with a list waiting for its explanations
        slate.reasons = self.explainer.reasons(entry, rows, slate.sources, pick.labels)
        if (pushed is None and entry.pending is None and self.ahead and len(entry.explained) < len(entry)
                and int(rows.max()) + 1 + 2 * k > len(entry.explained)):
            # Paging towards the end of what is explained (impression fatigue moves a user's page down
            # the list): explain deeper off the request path, so the next pages need no pass on a request.
            cache.defer(user, entry, self.reach(rows, k))

    def warm(self, users, entries, excluded, depth: int) -> None:
        """Explain freshly computed lists (their feature rows pending) before they are cached: the first
        `depth` candidates the users' filters leave today (`excluded`: impression fatigue, blocked,
        unavailable), so a user whose page is already down the list finds it explained; rows dropped after."""
        rows = []
        for entry, gone in zip(entries, excluded):
            n = min(depth, len(entry))
            if len(gone):
                left = np.cumsum(~np.isin(entry.positions, gone))
                n = min(int(np.searchsorted(left, depth)) + 1, len(entry))
            rows.append(np.arange(n))
        self.explainer.explain_many(entries, self.history, users, rows)
        for entry in entries:
            entry.pending = None

    def deferred(self) -> int:
        """Explain the re-rank pool of the lists computed on request since the last call (they keep their
        feature rows until then), and deepen the explanations of lists a user is paging down (their rows are
        computed again). Builds an explained copy and swaps it in, so a request reading the list meanwhile
        never sees it half updated. Returns how many."""
        done, cache = 0, self.lists.cache
        for user, entry, depth in cache.take_deferred():
            if cache.get(user, entry.stamp) is not entry:
                continue
            pending = entry.pending
            if pending is None:  # a deepening: the list's feature rows again, same stamp
                cache.counts["deepened"] += 1
                pending = self.lists.feature_rows(user, self.seen(user))
            copy = Ranked(entry.positions, entry.scores, entry.origin, entry.stamp)
            copy.pending, copy.page = pending, entry.page
            rows = np.union1d(np.arange(min(depth, len(entry))), entry.explained)
            self.explainer.explain(copy, self.history, user, rows)
            copy.pending = None
            done += cache.swap(user, entry, copy)
        return done


def rule_text(label: str) -> str:
    if not label:
        return ""
    action, _, name = label.partition(":")
    return {"pin": f"promoted ({name})", "boost": f"boosted ({name})", "bury": f"buried ({name})"}.get(action, label)
