"""Explanations: the short `reason` text on every recommended item.

Built only for the k items returned (after re-ranking), from three things the stages already hold:
- the anchor: the item in the user's recent history that most supports the candidate under the source that
  proposed it (EASE weight for item_item, co-visit rate for co_visitation, vector cosine for two_tower), so
  the text can say "similar to h0042 you booked";
- the ranker's top feature contributions for that row (SHAP values: LightGBM `pred_contrib`, XGBoost
  `pred_contribs`), averaged over the ranker's seed models;
- the stage and any business rule that placed the item (pinned, boosted, cold start segment).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

VERBS = {"view": "viewed", "click": "clicked", "add_to_cart": "added to your cart", "booking": "booked",
         "purchase": "bought", "rating": "rated"}
SOURCE_PHRASES = {"item_item": "often chosen together with what you liked",
                  "co_visitation": "often viewed next to what you viewed",
                  "two_tower": "matches your taste profile", "popular": "trending now"}
NAME_COLUMNS = ("title", "name")


def contributions(ranker, X) -> np.ndarray:
    """[n, n_features] SHAP contributions of each feature to each row's score (bias column dropped),
    averaged over the ranker's models. `X` is a DataFrame with the ranker's feature columns."""
    X = X[ranker.feature_names] if isinstance(X, pd.DataFrame) else X
    parts = []
    for model in ranker.models:
        if ranker.kind == "lightgbm":
            out = model.predict(X, num_iteration=ranker.best_iteration, pred_contrib=True, num_threads=1)
        elif ranker.kind == "xgboost":
            import xgboost as xgb

            out = model.predict(xgb.DMatrix(X), pred_contribs=True, iteration_range=(0, ranker.best_iteration))
        else:
            return np.zeros((len(X), len(ranker.feature_names)))
        parts.append(np.asarray(out)[:, :-1])
    return np.mean(parts, axis=0)


class Explainer:
    """Reason texts for a Recommender's final lists (see module docstring)."""

    def __init__(self, catalog, generator, ranker, event_names: dict[float, str], vectors=None,
                 n_factors: int = 2, n_history: int = 20):
        self.catalog, self.ranker, self.event_names = catalog, ranker, event_names
        self.n_factors, self.n_history = int(n_factors), int(n_history)
        self.sources = {s.name: s for s in generator.sources}
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
            n = source.C.shape[0]
            out = np.zeros((len(hist), len(items)), dtype=np.float32)
            ok_h, ok_i = hist < n, items < n
            out[np.ix_(ok_h, ok_i)] = source.C[hist[ok_h]][:, items[ok_i]].toarray()
            return out
        if self.vectors is not None and kind in ("TwoTowerSource", "ItemItemSource", "CoVisitationSource"):
            return self.vectors[hist] @ self.vectors[items].T
        return None

    def anchors(self, history, user_id: str, positions: np.ndarray, sources: list[str]) -> list[str | None]:
        """Per item "similar to X you booked" (or None when no history item supports it)."""
        hist = history.items(user_id)[-self.n_history:]
        weights = history._w.get(user_id, np.empty(0))[-self.n_history:]  # read-only use of the history
        out: list[str | None] = [None] * len(positions)
        if not len(hist):
            return out
        for name in set(sources):
            source = self.sources.get(name)
            cols = np.array([j for j, s in enumerate(sources) if s == name])
            support = self._support(source, hist, positions[cols]) if source is not None else None
            if support is None:
                continue
            recency = np.linspace(0.9, 1.0, len(hist))[:, None]  # ties go to the most recent item
            best = np.argmax(support * recency, axis=0)
            for c, (j, b) in enumerate(zip(cols, best)):
                if support[b, c] > 0:
                    verb = VERBS.get(self.event_names.get(float(weights[b]), ""), "interacted with")
                    out[j] = f"similar to {self.name(int(hist[b]))} you {verb}"
        return out

    def factors(self, X) -> list[str]:
        """Per row "top factors: a +0.31, b +0.12" from the ranker's positive contributions."""
        if self.ranker is None or self.n_factors <= 0 or X is None or not len(X):
            return [""] * (0 if X is None else len(X))
        contrib = contributions(self.ranker, X)
        names = self.ranker.feature_names
        out = []
        for row in contrib:
            top = [j for j in np.argsort(-row)[: self.n_factors] if row[j] > 0]
            out.append("top factors: " + ", ".join(f"{names[j]} {row[j]:+.2f}" for j in top) if top else "")
        return out

    def personal(self, history, user_id, positions, sources, X, labels) -> list[str]:
        anchors = self.anchors(history, user_id, np.asarray(positions, dtype=np.int64), sources)
        factors = self.factors(X) if X is not None else [""] * len(positions)
        out = []
        for anchor, factor, source, label in zip(anchors, factors, sources, labels):
            parts = [anchor or SOURCE_PHRASES.get(source, f"proposed by {source}"), factor, rule_text(label)]
            out.append("; ".join(p for p in parts if p))
        return out


def rule_text(label: str) -> str:
    if not label:
        return ""
    action, _, name = label.partition(":")
    return {"pin": f"promoted ({name})", "boost": f"boosted ({name})", "bury": f"buried ({name})"}.get(action, label)
