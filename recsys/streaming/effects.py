"""What a user's row of recent events implies: real-time counters and the live user vector.

Where this sits: the stream consumer (recsys.streaming.apply) folds a batch into each user's row
(recsys.streaming.state.UserEvents) and writes these two derived rows beside it, to the push views
`user_counters_realtime` and `user_vector_realtime` (feature_repo/; fields in recsys.features.definitions).
Both are pure functions of the row, never increments, so a redelivered or replayed batch writes the same
values, and a late event (older than the row's newest) changes them the way it changes the row.

Counters are anchored at the row's newest event (the row's time), not at the wall clock: `rt_click_1h` is the
number of clicks in the hour up to the user's latest event, which a reader ages against its own clock
(`rt_last_event_seconds`). They count the contract's event types; impressions are not interactions. A row
holds at most `max_events` events, so the 24 h counts of a user with more events than that saturate there.

The live vector is the serving model's user tower (recsys.retrieval.two_tower, numpy, no TensorFlow) applied
to the user's history as the model stores it followed by the row's interactions (most recent last), i.e. the
vector the two-tower source would compute if the model had seen these events; `user_vector_model` is the
model bundle's version, so a reader can ignore vectors of another model.
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from recsys.streaming.events import IMPRESSION
from recsys.streaming.state import UserEvents

_COUNTER = re.compile(r"^rt_(?P<what>.+)_(?P<hours>\d+)h$")
LAST_EVENT = "rt_last_event_seconds"
ALL_EVENTS = "events"


def interactions(row: UserEvents) -> list[int]:
    """Positions of the row's events that are interactions (not impressions)."""
    return [i for i, t in enumerate(row.event_types) if t != IMPRESSION]


def counters(row: UserEvents, names: Sequence[str]) -> dict[str, int]:
    """The counter features `names` (rt_<type>_<h>h, rt_events_<h>h, rt_last_event_seconds) of the row."""
    last = next((row.seconds[i] for i in range(len(row) - 1, -1, -1) if row.event_types[i] != IMPRESSION), None)
    out, by_hours = {}, {}
    for name, what, hours in _parse(tuple(names)):
        if what is None:
            out[name] = int(last) if last is not None else 0
            continue
        if last is None:
            out[name] = 0
            continue
        if hours not in by_hours:  # the row is in time order: the window is a suffix of it
            counts = Counter(row.event_types[bisect_right(row.seconds, last - 3600 * hours):])
            counts.pop(IMPRESSION, None)
            by_hours[hours] = counts
        counts = by_hours[hours]
        out[name] = sum(counts.values()) if what == ALL_EVENTS else counts.get(what, 0)
    return out


@lru_cache(maxsize=8)
def _parse(names: tuple[str, ...]) -> list[tuple[str, str | None, int]]:
    out = []
    for name in names:
        if name == LAST_EVENT:
            out.append((name, None, 0))
            continue
        match = _COUNTER.match(name)
        if match is None:
            raise ValueError(f"unknown counter feature {name!r} (expected rt_<event type>_<hours>h)")
        out.append((name, match.group("what"), int(match.group("hours"))))
    return out


class LiveVectors:
    """The user tower of a model bundle's two-tower, applied to live histories. `from_bundle` returns None
    for a bundle without a two-tower (the vector view is then not written)."""

    def __init__(self, model, version: str):
        self.model, self.version = model, str(version)
        self._vocab = {item: i + 1 for i, item in enumerate(model.item_vocab.tolist())}
        self._users = {user: i + 1 for i, user in enumerate(model.user_vocab.tolist())}

    @classmethod
    def from_bundle(cls, bundle: str | Path) -> LiveVectors | None:
        from recsys.registry.bundle import META_FILE, RECOMMENDER_DIR
        from recsys.retrieval.two_tower import TwoTowerModel

        bundle = Path(bundle)
        path = bundle / RECOMMENDER_DIR / "two_tower"
        if not (path / "arrays.npz").is_file():
            return None
        version = json.loads((bundle / META_FILE).read_text())["version"]
        return cls(TwoTowerModel.load(path), version)

    @property
    def dim(self) -> int:
        return int(self.model.item_embeddings.shape[1])

    def histories(self, users: Sequence[str], rows: Sequence[UserEvents]) -> list[list[str]]:
        """Per user, oldest first: the last `history_length` items the user tower reads from the model's
        stored history followed by the row's interactions (items the model does not know are skipped, as
        TwoTowerModel.encode_histories does; walking back from the newest stops there)."""
        n = self.model.config.history_length
        vocab, known = self.model.item_vocab, self._vocab
        out = []
        for user, row in zip(users, rows):
            picked = []
            for i in range(len(row) - 1, -1, -1):
                if len(picked) == n:
                    break
                if row.event_types[i] != IMPRESSION and row.item_ids[i] in known:
                    picked.append(row.item_ids[i])
            if len(picked) < n:
                stored = [j for j in self.model.user_hist[self._users.get(user, 0)].tolist() if j]
                picked += [str(vocab[j - 1]) for j in reversed(stored[-(n - len(picked)):])]
            out.append(picked[::-1])
        return out

    def vectors(self, users: Sequence[str], rows: Sequence[UserEvents]) -> np.ndarray:
        """float32 [len(users), dim]."""
        if not len(users):
            return np.zeros((0, self.dim), np.float32)
        return self.model.user_embeddings(list(users), self.histories(users, rows))

    def features(self, users: Sequence[str], rows: Sequence[UserEvents]) -> list[Mapping]:
        """The vector view's values per user: {"user_vector": [...], "user_vector_model": version}."""
        return [{"user_vector": v, "user_vector_model": self.version} for v in self.vectors(users, rows)]


def bundle_path(ref: str, tracking_uri: str, cache_dir: str | Path) -> Path:
    """The local bundle directory a model reference points at now: `models:/<name>@<alias>` (the MLflow
    registry alias, downloaded once per version into `cache_dir`), a bundle directory, or a directory of
    bundles (the newest complete one). The same forms the service takes (bentos/serving.yaml), minus bento:."""
    if ref.startswith("models:/"):
        from recsys.registry.mlflow_registry import download_bundle

        name, sep, alias = ref[len("models:/"):].rpartition("@")
        if not sep or not name or not alias:
            raise ValueError(f"model reference {ref!r} must look like models:/<name>@<alias>")
        return download_bundle(tracking_uri, name, alias, cache_dir)
    from recsys.registry.bundle import META_FILE, latest_bundle

    path = Path(ref)
    return (path if (path / META_FILE).is_file() else latest_bundle(path)).resolve()


class ModelWatcher:
    """Follows a model reference (configs/stream.yaml `model`): `check()` returns new LiveVectors when the
    reference points at another bundle than last time (None otherwise), at most every `reload_seconds`.
    Until a model resolves (a fresh project), events flow without the vector view."""

    def __init__(self, ref: str | None, tracking_uri: str, cache_dir: str | Path, reload_seconds: float):
        self.ref, self.tracking_uri, self.cache_dir = ref, tracking_uri, cache_dir
        self.reload_seconds = reload_seconds
        self.key: str | None = None
        self._checked = float("-inf")

    def check(self, now: float) -> tuple[bool, LiveVectors | None]:
        """(changed, vectors): changed is True when the model moved (vectors may then be None: no two-tower)."""
        import logging

        if not self.ref or (self.key is not None and not self.reload_seconds):
            return False, None
        if now - self._checked < (self.reload_seconds or 30.0):
            return False, None
        self._checked = now
        try:
            path = bundle_path(self.ref, self.tracking_uri, self.cache_dir)
        except Exception as error:  # noqa: BLE001 - no model yet: events still flow, vectors wait
            logging.getLogger(__name__).warning("no live vectors yet: model %s not available (%s)", self.ref, error)
            return False, None
        if str(path) == self.key:
            return False, None
        self.key = str(path)
        return True, LiveVectors.from_bundle(path)
