"""Cold start: what a user without history gets, and what tops up a short personal list.

Trending = interactions in the trailing `window_days` before the newest training event (all-time counts
break ties), globally and per user segment: for each categorical user attribute (home region, budget, age
band ...) and value, the items that users with that value interacted with recently, shrunk towards the
global trend with `prior` pseudo-events so small segments do not produce noise. The segment of a request is
the users-table row of the user (registered but never active) overridden by the request context
(`{"home_region": "Asia"}`).

Content-based matches come from the two-tower user tower fed with the segment's attributes and an unknown
id (`TwoTowerSource.attribute_vectors`); `interleave` mixes them into the trending list at a fixed share.
`ColdLists` is the stage as a request runs it: a page filtered and re-ranked like a personal list, kept per
(segment, context, exclusions, k) so a visitor's page costs a lookup.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.serving.explain import rule_text
from recsys.serving.slate import Slate

DAY = 86400.0


class ColdStart:
    def __init__(self, window_days: float = 30.0, prior: float = 50.0, max_values: int = 100,
                 segment_columns: list[str] | None = None):
        self.window_days, self.prior, self.max_values = float(window_days), float(prior), int(max_values)
        self.segment_columns = segment_columns
        self.trending = np.zeros(0, dtype=np.float32)
        self.segments: dict[str, dict[str, np.ndarray]] = {}
        self.users = pd.DataFrame()  # user_id index -> segment columns (strings)

    def fit(self, history, users: pd.DataFrame | None = None) -> ColdStart:
        n = len(history.catalog)
        frame = history.to_frame()
        items, times = frame.item_pos.to_numpy(np.int64), frame.t.to_numpy(np.float64)
        recent = times >= (times.max() if len(times) else 0.0) - self.window_days * DAY
        alltime = np.bincount(items, minlength=n).astype(np.float64)
        tie = alltime / (alltime.max() + 1.0) if n else alltime  # < 1: orders items inside a count
        counts = np.bincount(items[recent], minlength=n).astype(np.float64)
        self.trending = (counts + tie).astype(np.float32)
        share = (counts + 1e-3 * tie) / max(counts.sum() + 1e-3 * tie.sum(), 1e-12)  # global recent share
        if users is not None:  # refits (recsys.training.refresh_recommender) keep the table they have
            self.users = self._segment_table(users)
        self.segments = {}
        if not len(self.users):
            return self
        user_of_event = frame.user_id.to_numpy(dtype=object)[recent]
        for col in self.users.columns:
            values = pd.Series(user_of_event).map(self.users[col]).to_numpy(dtype=object)
            tables = {}
            for value in self.users[col].dropna().unique():
                hit = items[recent][values == value]
                c = np.bincount(hit, minlength=n).astype(np.float64)
                # Posterior mean share with `prior` pseudo-events spread like the global trend.
                tables[str(value)] = ((c + self.prior * share) / (len(hit) + self.prior) + 1e-9 * tie).astype(np.float32)
            self.segments[col] = tables
        return self

    def _segment_table(self, users: pd.DataFrame | None) -> pd.DataFrame:
        if users is None or "user_id" not in getattr(users, "columns", ()):
            return pd.DataFrame()
        table = users.astype({"user_id": str}).drop_duplicates("user_id").set_index("user_id")
        cols = self.segment_columns
        if cols is None:  # every categorical column with few enough values (not free text, not numbers)
            cols = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])
                    and 1 < table[c].nunique() <= self.max_values]
        missing = set(cols) - set(table.columns)
        if missing:
            raise ValueError(f"cold_start.segment_columns {sorted(missing)} are not columns of the users table")
        return table[list(cols)].astype("string").astype(object)

    def values(self) -> dict[str, list[str]]:
        """Segment columns and their known values (what the context may name)."""
        return {col: sorted(tables) for col, tables in self.segments.items()}

    def segment_of(self, user_id: str) -> dict[str, str]:
        if not len(self.users) or user_id not in self.users.index:
            return {}
        row = self.users.loc[user_id]
        return {c: str(v) for c, v in row.items() if isinstance(v, str)}

    def scores(self, segment: dict[str, str]) -> tuple[np.ndarray, str]:
        """Trending scores over the catalogue for a segment (mean of its columns' tables; unknown columns or
        values are ignored) and the phrase explaining them."""
        parts = [(c, v, self.segments[c][v]) for c, v in sorted(segment.items())
                 if c in self.segments and v in self.segments[c]]
        if not parts:
            return self.trending, "trending now"
        scores = parts[0][2] if len(parts) == 1 else np.mean([p[2] for p in parts], axis=0)
        who = " and ".join(f"{c.replace('_', ' ')} {v}" for c, v, _ in parts)
        return scores, f"trending with travellers of {who}"

    def grow(self, n_items: int) -> None:
        """New catalogue items start with no trend (Recommender.add_items)."""
        pad = n_items - len(self.trending)
        if pad > 0:
            self.trending = np.r_[self.trending, np.zeros(pad, np.float32)]
            for tables in self.segments.values():
                for v in tables:
                    tables[v] = np.r_[tables[v], np.zeros(pad, np.float32)]

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        meta = {"window_days": self.window_days, "prior": self.prior, "max_values": self.max_values,
                "segment_columns": self.segment_columns, "values": self.values()}
        (path / "cold_start.json").write_text(json.dumps(meta))
        arrays = {"trending": self.trending}
        for col, tables in self.segments.items():
            for k, v in enumerate(sorted(tables)):
                arrays[f"{col}/{k}"] = tables[v]
        np.savez(path / "cold_start.npz", **arrays)
        self.users.reset_index().to_parquet(path / "user_segments.parquet")

    @classmethod
    def load(cls, path: Path) -> ColdStart:
        path = Path(path)
        meta = json.loads((path / "cold_start.json").read_text())
        out = cls(meta["window_days"], meta["prior"], meta["max_values"], meta["segment_columns"])
        with np.load(path / "cold_start.npz", allow_pickle=False) as z:
            out.trending = z["trending"]
            out.segments = {col: {v: z[f"{col}/{k}"] for k, v in enumerate(values)}
                            for col, values in meta["values"].items()}
        users = pd.read_parquet(path / "user_segments.parquet")
        out.users = users.set_index("user_id").astype(object) if len(users.columns) > 1 else pd.DataFrame()
        return out


def interleave(primary: np.ndarray, secondary: np.ndarray, share: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Merge two ranked position lists: every round(1/share)-th slot from `secondary` (skipping items
    already placed), the rest from `primary`. Returns (positions, from_secondary flags), at most n long."""
    step = int(round(1.0 / share)) if share > 0 else 0
    out, flags, used = [], [], set()
    a = (int(p) for p in primary)
    b = (int(p) for p in secondary) if step else iter(())
    while len(out) < n:
        want_b = step and (len(out) + 1) % step == 0
        src = [(b, True), (a, False)] if want_b else [(a, False), (b, True)]
        for it, flag in src:
            p = next((p for p in it if p not in used), None)
            if p is not None:
                out.append(p)
                flags.append(flag)
                used.add(p)
                break
        else:
            break
    return np.asarray(out, dtype=np.int64), np.asarray(flags, dtype=bool)


class ColdLists:
    """The cold-start stage: trending for the user's segment with two-tower content matches mixed in,
    filtered like everything else, then re-ranked (MMR, rules) like a personal list. `two_tower` (a
    TwoTowerSource or None) and `vectors` (its catalogue vectors) give the content matches."""

    MAX_KEPT = 4096  # segment lists and pages kept (a bound, not an LRU: segments are few)

    def __init__(self, cold: ColdStart, reranker, config: dict, two_tower=None, vectors=None):
        self.cold, self.reranker, self.config = cold, reranker, config
        self.two_tower, self.vectors = two_tower, vectors
        self._lists: dict = {}  # segment -> (trending, phrase, content or None, phrase)
        self._pages: dict = {}  # (segment, context, exclusions, k) -> a page

    def clear(self) -> None:
        """The trends changed (refit): forget the kept lists and pages."""
        self._lists, self._pages = {}, {}

    def lists(self, segment: dict):
        """(trending scores, phrase, content scores or None, phrase) for a segment; kept."""
        key = tuple(sorted(segment.items()))
        hit = self._lists.get(key)
        if hit is None:
            trend, text = self.cold.scores(segment)
            content, content_text = None, ""
            two_tower = self.two_tower
            profile = {a: v for a, v in segment.items() if two_tower and a in two_tower.user_attributes}
            if profile and self.vectors is not None and self.config["content_share"] > 0:
                content = self.vectors @ two_tower.attribute_vectors([profile])[0]
                content[~self.vectors.any(axis=1)] = -np.inf
                who = " and ".join(f"{a.replace('_', ' ')} {v}" for a, v in sorted(profile.items()))
                content_text = f"matches travellers of {who}"
            hit = (trend, text, content, content_text)
            if len(self._lists) < self.MAX_KEPT:
                self._lists[key] = hit
        return hit

    def slate(self, user_id: str, k: int, excluded: np.ndarray, parsed, n_items: int) -> Slate:
        """Up to k items for `user_id` (a segment from the users table, overridden by the context's segment
        keys), none of `excluded` (sorted positions), all inside the context mask."""
        c = self.config
        segment = {**self.cold.segment_of(user_id), **parsed.segment}
        # A function of the segment, the context, the exclusions and k: kept (bounded), so a visitor's page
        # costs a lookup; the exclusions (blocklist, fatigue, ...) are part of the key.
        key = (tuple(sorted(segment.items())), parsed.key, np.asarray(excluded, dtype=np.int64).tobytes(), k)
        page = self._pages.get(key)
        if page is not None:
            return Slate(*(list(part) for part in page))
        trend, text, content, content_text = self.lists(segment)
        allowed = np.ones(n_items, dtype=bool) if parsed.mask is None else parsed.mask.copy()
        allowed[excluded] = False
        trending = top(np.where(allowed, _fit(trend, n_items), -np.inf), c["pool"])
        matches = top(np.where(allowed, content, -np.inf), c["pool"]) if content is not None else trending[:0]
        pos, from_content = interleave(trending, matches, c["content_share"], c["pool"])
        rel = 1.0 - np.arange(len(pos)) / max(len(pos), 1)
        chosen, sc, labels = self.reranker.rerank(pos, rel, k, lambda p: bool(allowed[p]))
        flags = dict(zip(pos.tolist(), from_content.tolist()))
        sources = ["two_tower" if flags.get(p) else "trending" for p in chosen]
        reasons = ["; ".join(x for x in (content_text if s == "two_tower" else text, rule_text(lb)) if x)
                   for s, lb in zip(sources, labels)]
        stages = ["pinned" if lb.startswith("pin:") else "cold_start" for lb in labels]
        if len(self._pages) < self.MAX_KEPT:
            self._pages[key] = (tuple(int(p) for p in chosen), tuple(sc), tuple(sources), tuple(stages),
                                tuple(reasons))
        return Slate(list(chosen), list(sc), sources, stages, reasons)


def top(scores: np.ndarray, n: int) -> np.ndarray:
    """Positions of the n best finite scores, best first (ties by position)."""
    finite = np.flatnonzero(np.isfinite(scores))
    if len(finite) > n:
        finite = finite[np.argpartition(-scores[finite], n - 1)[:n]]
    return finite[np.lexsort((finite, -scores[finite]))]


def _fit(values: np.ndarray, n: int) -> np.ndarray:
    return values if len(values) >= n else np.r_[values, np.zeros(n - len(values), values.dtype)]
