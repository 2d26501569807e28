"""The filter stage: which items a user must never be shown, computed before candidates are retrieved.

retrieve -> FILTER -> rank -> re-rank. Every exclusion here goes into the candidate generator's exclude matrix,
so sources over-fetch past excluded items and the ranker never sees them:
- already seen (`SeenPolicy`): items in the user's history under the configured event types (e.g. exclude
  booked and clicked hotels, allow re-viewing viewed ones);
- blocked (`ItemSet`, reloadable from a file and settable by the service's endpoint) and unavailable items;
- recently recommended (`ImpressionLog`): an item shown `max_impressions` times within `window_seconds`
  without any engagement is suppressed (impression fatigue); `Recommender.recommend` records impressions,
  any feedback event on the item clears them.
Context filters (context.py) are applied right after retrieval; duplicates cannot arise (candidates are a
union of unique positions, re-ranking selects each position once).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.schema import EVENT_TYPES


class SeenPolicy:
    """Which past events make an item "already seen". `exclude_event_types=None` excludes every
    interacted item (what offline evaluation masks). The History stores each event's weight, not its type,
    so types are told apart by weight; listing one of two types that share a weight (view and rating both
    weigh 1 by default) is ambiguous and rejected at configuration time."""

    def __init__(self, event_weights: dict[str, float], exclude_event_types=None):
        self.all = exclude_event_types is None
        self.event_types = None if self.all else list(exclude_event_types)
        self.weights: np.ndarray | None = None
        if self.all:
            return
        unknown = set(self.event_types) - set(event_weights)
        if unknown:
            raise ValueError(f"filters.seen_event_types names unknown event types {sorted(unknown)}; "
                             f"known: {sorted(event_weights)}")
        excluded = {float(event_weights[t]) for t in self.event_types}
        kept = {t: float(w) for t, w in event_weights.items() if t not in self.event_types}
        clash = sorted(t for t, w in kept.items() if w in excluded)
        if clash:
            raise ValueError(f"filters.seen_event_types excludes a weight shared with {clash}; the history "
                             "tells event types apart by weight, so list those too or change event_weights")
        self.weights = np.array(sorted(excluded))

    def positions(self, history, user_id: str) -> np.ndarray:
        items = history.items(user_id)
        if self.all or not len(items):
            return items
        # History keeps per-event weights privately (recsys.features.history); read them, never write.
        weights = history._w.get(user_id)[: len(items)]  # a concurrent append may have grown it already
        return items[: len(weights)][np.isin(weights, self.weights)]


class ItemSet:
    """A set of item ids (blocked or unavailable) kept as a catalogue mask for O(1) filtering. Ids outside
    the catalogue are kept too (they take effect if the item is added later). With `path`, the set is the
    file's content (one id per line, `#` comments, or a JSON list), re-read when the file changes
    (checked at most every `check_seconds` by `maybe_reload`)."""

    def __init__(self, n_items: int, index: dict[str, int], ids=(), path: str | None = None,
                 check_seconds: float = 1.0):
        self._index, self._n = index, n_items
        self.path, self.check_seconds = path, float(check_seconds)
        self._stamp, self._checked = None, 0.0
        self._lock = threading.Lock()
        self.ids: frozenset[str] = frozenset()
        self.mask = np.zeros(n_items, dtype=bool)
        self.positions = np.empty(0, dtype=np.int64)
        self.version = 0  # bumped on every change: caches keyed on it (cold-start lists) invalidate
        self.set(ids)
        if path:
            self.reload()

    def set(self, ids) -> None:
        if isinstance(ids, str):
            raise TypeError("pass a list of item ids, not one string")
        clean = frozenset(str(i) for i in ids)
        mask = np.zeros(self._n, dtype=bool)
        pos = np.fromiter((self._index.get(i, -1) for i in clean), np.int64, len(clean))
        mask[pos[pos >= 0]] = True
        with self._lock:  # swap whole objects: readers see the old or the new set, never a mix
            self.ids, self.mask, self.positions = clean, mask, np.flatnonzero(mask)
            self.version += 1

    def add(self, ids) -> None:
        self.set(self.ids | {str(i) for i in ids})

    def remove(self, ids) -> None:
        self.set(self.ids - {str(i) for i in ids})

    def grow(self, n_items: int, index: dict[str, int]) -> None:
        self._n, self._index = n_items, index
        self.set(self.ids)

    def reload(self) -> bool:
        """Re-read `path` (True if it changed the set). A missing file means an empty set."""
        if not self.path:
            return False
        path = Path(self.path)
        try:
            stamp = os.stat(path).st_mtime_ns
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        ids = read_id_file(path) if stamp is not None else []
        changed = frozenset(ids) != self.ids
        if changed:
            self.set(ids)
        return changed

    def maybe_reload(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        if self.path and now - self._checked >= self.check_seconds:
            self._checked = now
            self.reload()


def read_id_file(path: Path) -> list[str]:
    text = Path(path).read_text()
    if path.suffix == ".json":
        ids = json.loads(text)
        if not isinstance(ids, list):
            raise ValueError(f"{path}: expected a JSON list of item ids")
        return [str(i) for i in ids]
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


MAX_PER_USER = 2000  # impressions kept per user: the newest, enough for any fatigue threshold in use


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """np.unique for the short arrays of a request (tens of positions): a sort and one comparison,
    ~60% of np.unique's time at this size (7 vs 11 us for 60 values; it runs on every request)."""
    values = np.sort(values)
    if len(values) < 2:
        return values
    first = np.empty(len(values), dtype=bool)
    first[0] = True
    np.not_equal(values[1:], values[:-1], out=first[1:])
    return values[first]


class ImpressionLog:
    """Per user, the (item position, time) of recent impressions not followed by engagement.

    `fatigued(user, now)` lists the items shown at least `max_impressions` times within `window_seconds`.
    Memory is bounded: entries older than the window are dropped when a user is touched, and at most
    `max_users` users are kept (least recently shown first out)."""

    def __init__(self, max_impressions: int = 3, window_seconds: float = 86400.0, max_users: int = 100_000):
        self.max_impressions, self.window = int(max_impressions), float(window_seconds)
        self.max_users = int(max_users)
        self._users: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_impressions > 0

    def record(self, user_id: str, positions, now: float) -> None:
        if not self.enabled or not len(positions):
            return
        positions = np.array(positions, dtype=np.int64)  # a copy: the caller's array may change
        stamps = np.full(len(positions), float(now))
        cutoff = now - self.window
        with self._lock:
            entry = self._users.get(user_id)
            if entry is not None:
                pos, ts = entry
                if ts.min() <= cutoff:  # only then filter: most records expire nothing
                    keep = ts > cutoff
                    pos, ts = pos[keep], ts[keep]
                positions = np.concatenate((pos, positions))[-MAX_PER_USER:]  # bounded even for a hot user
                stamps = np.concatenate((ts, stamps))[-MAX_PER_USER:]
            self._users[user_id] = (positions, stamps)
            self._users.move_to_end(user_id)
            while len(self._users) > self.max_users:
                self._users.popitem(last=False)

    def engage(self, user_id: str, positions) -> None:
        """The user acted on these items: their impressions stop counting."""
        with self._lock:
            entry = self._users.get(user_id)
            if entry is not None:
                keep = ~np.isin(entry[0], np.asarray(positions, dtype=np.int64))
                self._users[user_id] = (entry[0][keep], entry[1][keep])

    def fatigued(self, user_id: str, now: float) -> np.ndarray:
        entry = self._users.get(user_id)
        if not self.enabled or entry is None:
            return np.empty(0, dtype=np.int64)
        pos = entry[0][entry[1] > now - self.window]
        n = self.max_impressions
        if len(pos) < n:
            return np.empty(0, dtype=np.int64)
        pos = np.sort(pos)  # an item shown n times or more: its first copy equals the copy n - 1 places on
        head = pos[: len(pos) - n + 1]
        return sorted_unique(head[head == pos[n - 1:]])

    def to_frame(self) -> pd.DataFrame:
        with self._lock:
            items = list(self._users.items())
        return pd.DataFrame({
            "user_id": np.repeat(np.array([u for u, _ in items], dtype=object), [len(p) for _, (p, _) in items]),
            "item_pos": np.concatenate([p for _, (p, _) in items]) if items else np.empty(0, np.int64),
            "t": np.concatenate([t for _, (_, t) in items]) if items else np.empty(0)})

    def load_frame(self, frame: pd.DataFrame) -> None:
        with self._lock:
            self._users.clear()
            for user, block in frame.groupby("user_id", sort=False):
                self._users[str(user)] = (block.item_pos.to_numpy(np.int64), block.t.to_numpy(np.float64))


class Filters:
    """The filter stage over the online state: what a user must not get (`excluded`), and which candidates
    of a ranked list survive that and the request context (`keep`). The blocked and unavailable sets and the
    impression log are shared with the Recommender's variants; the seen policy is per configuration."""

    def __init__(self, seen: SeenPolicy, history, blocklist: ItemSet, unavailable: ItemSet,
                 impressions: ImpressionLog, catalog):
        self.seen, self.history, self.blocklist, self.unavailable = seen, history, blocklist, unavailable
        self.impressions, self.catalog = impressions, catalog

    def seen_positions(self, user_id: str) -> np.ndarray:
        """The items retrieval skips for a user (sorted, unique): what the seen filter masks."""
        return np.unique(self.seen.positions(self.history, user_id)).astype(np.int64)

    def excluded(self, user_id: str, explicit: np.ndarray, now: float) -> np.ndarray:
        """Sorted positions this user must not get: seen, explicitly excluded, blocked, unavailable, fatigued."""
        return sorted_unique(np.concatenate([self.seen.positions(self.history, user_id), explicit,
                                             self.blocklist.positions, self.unavailable.positions,
                                             self.impressions.fatigued(user_id, now)]).astype(np.int64))

    def keep(self, positions: np.ndarray, excluded: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Indices of the candidates at `positions` that are neither excluded nor outside the context mask."""
        removed = np.zeros(len(self.catalog), dtype=bool)  # a catalogue mask: cheaper than np.isin here
        removed[excluded] = True
        keep = ~removed[positions]
        if mask is not None:
            keep &= mask[positions]
        return np.flatnonzero(keep)

    @staticmethod
    def pushed(excluded: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Everything a request filters, as sorted positions for retrieval to skip (the short-list fallback)."""
        return excluded if mask is None else np.union1d(excluded, np.flatnonzero(~mask))

    @staticmethod
    def allowed(excluded: np.ndarray, mask: np.ndarray | None):
        """`allowed(position) -> bool` for the re-rank's pins: not excluded and inside the context."""
        def allowed(p: int) -> bool:
            i = np.searchsorted(excluded, p)
            return not (i < len(excluded) and excluded[i] == p) and (mask is None or bool(mask[p]))
        return allowed


def event_type_of_weight(event_weights: dict[str, float]) -> dict[float, str]:
    """Weight -> the first event type (in schema order) with that weight: how a history entry is named
    in explanations ("you booked")."""
    out: dict[float, str] = {}
    for t in list(EVENT_TYPES) + [t for t in event_weights if t not in EVENT_TYPES]:
        if t in event_weights:
            out.setdefault(float(event_weights[t]), t)
    return out
