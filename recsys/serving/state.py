"""The users' online state: one interface for every way a user's events reach a serving process.

Where this sits: every stage of a request reads the user's state from here -- the history (the bundle's plus
every event applied since; the seen filter, the candidate sources, the ranking features and the
explanations read it) and the impression log (fatigue) -- and the Recommender's first stage on a request is
`OnlineState.sync`, which brings the state up to date for the requesting users before anything reads it:

- in process (the default without Kafka): /feedback events are applied at once (`apply`) and, in the
  service, appended to a durable local event log first (recsys/serving/eventlog.py); `sync` applies what
  other workers and replicas on the host appended since (one fstat when nothing is new). A restarted
  service replays the log (`use_log`).
- the Feast online store (Kafka configured): the stream consumer keeps each user's recent events in one
  row (`user_events_realtime`, recsys.streaming.state.UserEvents); `sync` reads the requesting user's row
  in one key lookup -- the same lookup that brings the ranker's daily store features
  (recsys.features.online.OnlineFeatures.pin) -- and applies the events this process does not have yet.

Idempotence. An event with an `event_id` is applied once per process, whichever way it arrives (the
worker's own /feedback, the log, the row: read-your-writes then dedup), and an event at or before the
user's newest event in the loaded bundle is taken as already in it (the bundle was trained on it). So every
worker and replica that loaded the same bundle and saw the same events holds the same history, and gives the
same answers (impressions recorded by /recommend stay per process: a client that wants fleet-wide fatigue
sends them as `impression` events). Events without an id (library callers) are applied as given.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections import Counter

import numpy as np
import pandas as pd

from recsys.data.schema import EVENT_TYPE, ITEM_ID, TIMESTAMP, USER_ID
from recsys.serving.feedback import EVENT_ID, IMPRESSION, append_event, fast_events, normalise_events

MAX_JOURNAL = 1_000_000  # applied events kept for a hot-reload hand-over (~150 bytes each)
KEEP_IDS = 400  # event ids remembered per user (twice a row's window); older ones are covered by time


class OnlineState:
    """History, impression log and journal of one loaded bundle (shared by its variants), and the sources
    of new events. `rows`: the Feast online store reader (Kafka mode), `log`: the event log reader."""

    def __init__(self, history, impressions):
        self.history, self.impressions = history, impressions
        self.journal: collections.deque = collections.deque(maxlen=MAX_JOURNAL)  # (user, item, type, s, id)
        self.lock = threading.Lock()
        self._ids: dict[str, dict[str, float]] = {}  # user -> {event id: seconds} applied (or skipped) here
        self._mark: dict[str, float] = {}  # user -> newest event time the bundle holds (set when first needed)
        self._row_stamps: dict[str, int] = {}  # user -> hash of the store row last applied
        self.rows = None  # recsys.serving.state.StoreRows: the per-request lookup (Kafka mode)
        self.log = None  # recsys.serving.eventlog.LogReader (direct mode)
        self.counts: Counter = Counter()
        self.ages: collections.deque = collections.deque(maxlen=1024)  # seconds from event time to applied

    # ---- sources ----
    def use_log(self, reader) -> dict:
        """Follow a shared event log: replay what it holds now (a restart), then `sync` tails it."""
        self.log, total = reader, Counter()
        while True:  # in pieces: a long log is not read into memory at once
            events = reader.new()
            if not events:
                return dict(total)
            total.update(self.apply_tuples(events, replay=True)[0])

    def use_store(self, rows) -> None:
        """Read each requesting user's real-time row from the online store on `sync` (Kafka mode)."""
        self.rows = rows

    # ---- the per-request stage ----
    @contextlib.contextmanager
    def sync(self, users: list[str], features=None, timer: dict | None = None):
        """Bring `users`' state up to date, then serve the block: events other processes logged (direct
        mode) or the users' rows (Kafka mode: one key lookup, with the ranker's store-feature rows). Yields
        each user's store-feature stamp for the ranked-list cache (None without online store features);
        `features` (the ranker's store provider) serves the rows read here to the rank stage until the end."""
        started = time.perf_counter()
        rows = None
        if self.log is not None:
            self.apply_tuples(self.log.new(), replay=True, ages=True)
        if self.rows is not None:  # the real-time rows, and the daily store-feature rows when due
            needs = getattr(features, "needs", None)
            rows = self.rows.read(users, needs is not None and needs(users))
            self._apply_rows(users, rows)
        stamps, pinned = store_stamps(features, users, rows)
        if timer is not None and (pinned or self.rows is not None or self.log is not None):
            seconds, n = timer.get("state", (0.0, 0))
            timer["state"] = (seconds + time.perf_counter() - started, n + len(users))
        try:
            yield stamps
        finally:
            if pinned:
                features.unpin()

    def _apply_rows(self, users, rows) -> None:
        from recsys.features.definitions import USER_EVENTS

        new = []
        for user, row in zip(users, rows):
            _, values = row.get(USER_EVENTS, (None, None))
            if values is None or "rt_event_ids" not in values:
                continue
            stamp = hash(values.blobs)  # the stored bytes: a row changes (a late event too) iff they do
            if self._row_stamps.get(user) == stamp:
                continue  # the row this process applied last: nothing new, nothing parsed (the usual request)
            self._row_stamps[user] = stamp
            new.extend((user, i, t, s, e) for e, i, t, s in zip(values["rt_event_ids"], values["rt_item_ids"],
                                                                 values["rt_event_types"], values["rt_event_seconds"]))
        if new:  # a changed row holds the events applied before too: they are skipped without being counted
            self.apply_tuples(new, replay=True, count=False, ages=True)

    # ---- applying events ----
    def apply(self, events, now: float) -> tuple[dict, list[str]]:
        """Apply feedback (DataFrame / list of dicts: user_id, item_id, event_type, optional timestamp and
        event_id) to the history (engagement) and the impression log (engagement clears an item's
        impressions; "impression" adds to them). Returns (counts, users whose history changed). A bad event
        raises InvalidRequest and nothing is applied."""
        quick = fast_events(events, now) if all(hasattr(self.history, a) for a in ("_items", "_ts", "_w")) else None
        if quick is not None:
            return self.apply_tuples(quick)
        return self._apply_frame(normalise_events(events, now))

    def apply_tuples(self, events: list[tuple], replay: bool = False, count: bool = True,
                     ages: bool = False) -> tuple[dict, list[str]]:
        """Apply (user, item, event_type, seconds, event_id or None) tuples, one at a time (the usual case:
        a /feedback event, a row's few new events). `replay`: events from the log or the store (counted as
        applied); `count`: count the events skipped (duplicates, in_bundle); `ages`: keep how old each new
        event is (what another process's event took to arrive here)."""
        if not events:
            return {"applied": 0, "unknown_items": 0, "impressions": 0}, []
        applied = unknown = impressions = 0
        late, changed = [], {}
        now = time.time()
        history = self.history
        index, weights = history.catalog.index, history.event_weights
        with self.lock:
            for user, item, kind, seconds, key in events:
                if key is not None and not self._fresh(user, key, seconds, count):
                    continue
                if ages:  # how long the event took to reach this process (the shared state's freshness)
                    self.ages.append(now - seconds)
                pos = index.get(item, -1)
                impressions += kind == IMPRESSION
                if pos < 0:
                    unknown += 1
                    continue
                applied += 1
                if kind == IMPRESSION:
                    self.impressions.record(user, [pos], seconds)
                    continue
                self.impressions.engage(user, [pos])
                changed[user] = True
                if not append_event(history, user, pos, seconds, float(weights.get(kind, 1.0))):
                    late.append((user, item, kind, pd.Timestamp(seconds, unit="s", tz="UTC")))
                self.journal.append((user, item, kind, seconds, key))
            if late:
                history.add(pd.DataFrame(late, columns=[USER_ID, ITEM_ID, EVENT_TYPE, TIMESTAMP]))
        if replay:
            self.counts["applied"] += applied + unknown
        return {"applied": applied, "unknown_items": unknown, "impressions": impressions}, list(changed)

    def _apply_frame(self, frame: pd.DataFrame) -> tuple[dict, list[str]]:
        """The bulk path (a DataFrame, many events): History.add once."""
        with self.lock:
            seconds = (frame[TIMESTAMP].astype("int64") / 1e9).to_numpy()
            fresh = np.array([key is None or self._fresh(u, key, s)
                              for u, key, s in zip(frame[USER_ID], frame[EVENT_ID], seconds)], dtype=bool)
            frame, seconds = frame[fresh], seconds[fresh]
            pos = self.history.catalog.positions(frame[ITEM_ID].to_numpy())
            is_imp = (frame[EVENT_TYPE] == IMPRESSION).to_numpy()
            for (user, imp), block in frame.assign(_p=pos, _i=is_imp)[pos >= 0].groupby([USER_ID, "_i"]):
                if imp:
                    self.impressions.record(user, block._p.to_numpy(), block[TIMESTAMP].max().timestamp())
                else:
                    self.impressions.engage(user, block._p.to_numpy())
            keep = ~is_imp & (pos >= 0)  # items outside the catalogue: not history (nor journal)
            events = frame[keep]
            if len(events):
                self.history.add(events[[USER_ID, ITEM_ID, EVENT_TYPE, TIMESTAMP]])
                self.journal.extend(zip(events[USER_ID].tolist(), events[ITEM_ID].tolist(),
                                        events[EVENT_TYPE].tolist(), seconds[keep].tolist(), events[EVENT_ID].tolist()))
        counts = {"applied": int((pos >= 0).sum()), "unknown_items": int((pos < 0).sum()),
                  "impressions": int(is_imp.sum())}
        return counts, list(pd.unique(events[USER_ID])) if len(events) else []

    def _fresh(self, user: str, key: str, seconds: float, count: bool = True) -> bool:
        """Whether an event with an id is new here: not applied yet, and newer than the user's history in
        the loaded bundle. Remembers it. Call under the lock."""
        ids = self._ids.get(user)
        if ids is not None and key in ids:
            self.counts["duplicates"] += count
            return False
        mark = self._mark.get(user)
        if mark is None:
            last = self.history.timestamps(user)
            mark = self._mark[user] = float(last[-1]) if len(last) else float("-inf")
        if seconds <= mark:
            self.counts["in_bundle"] += count
            return False
        if ids is None:
            ids = self._ids[user] = {}
        ids[key] = seconds
        if len(ids) > KEEP_IDS:  # forget the oldest half; anything as old counts as known from now on
            old = sorted(ids.items(), key=lambda kv: kv[1])[: len(ids) - KEEP_IDS // 2]
            for k, _ in old:
                del ids[k]
            self._mark[user] = max(mark, old[-1][1])
        return True

    # ---- hot reload ----
    def adopt(self, previous: OnlineState) -> None:
        """Take over a running version's state (hot reload): its impressions, and its journal's events
        newer than this bundle's history (ids remembered, so the log or the store never applies them again)."""
        imp = previous.impressions.to_frame()
        if len(imp):
            source, target = previous.history.catalog, self.history.catalog
            pos = target.positions(source.item_ids[imp.item_pos.to_numpy()])
            self.impressions.load_frame(imp.assign(item_pos=pos)[pos >= 0])
        events = list(previous.journal)
        if events:
            self.apply_tuples([(u, i, t, s, k if k is not None else f"journal:{n}") for n, (u, i, t, s, k)
                               in enumerate(events)])

    def status(self) -> dict:
        """Counts since load: applied (events from the log or the store), duplicates (ids seen before),
        in_bundle (events the bundle already holds), and the reads: store_reads / store_errors / store_skipped
        / store_read_seconds (Kafka mode), log_events / log_bad_lines (direct mode)."""
        out = dict(self.counts)
        if self.rows is not None:
            out.update({f"store_{k}": v for k, v in self.rows.counts.items()})
        if self.log is not None:
            out.update({f"log_{k}": v for k, v in self.log.counts.items()})
        return out


class StoreRows:
    """The requesting users' rows in the Feast online store, in one key lookup: their recent events
    (`user_events_realtime`, written by the stream consumer) and, when due, the ranker's daily store-feature
    views (`feature_views`, served to the rank stage by OnlineFeatures.pin, which keeps them between reads).
    `store`: an open FeatureStore or a callable returning one (default: opened from repo_path / fs_yaml)."""

    def __init__(self, repo_path: str = "feature_repo", fs_yaml: str = "feature_store.yaml", feature_views=(),
                 store=None, retry_after: float = 5.0):
        from recsys.features.definitions import USER_EVENTS, USER_KEY
        from recsys.features.lookup import Health, KeyLookup

        if store is None:
            from recsys.features.store import open_store

            store = lambda: open_store(repo_path, fs_yaml)  # noqa: E731 - opened on the first read
        health = Health(retry_after)
        self.events = KeyLookup((USER_EVENTS,), USER_KEY, store, health)
        self.lookup = KeyLookup((USER_EVENTS, *feature_views), USER_KEY, store, health) if feature_views else None

    @property
    def counts(self) -> Counter:
        return self.events.counts

    def read(self, users: list[str], with_features: bool = True) -> list[dict]:
        """The users' rows: the real-time one, and the feature views' too when `with_features`."""
        return (self.lookup if with_features and self.lookup is not None else self.events).read(users)

    def ping(self, timeout: float = 2.0) -> bool:
        """Whether the store answers a one-key lookup within `timeout` seconds (a slow probe finishes in the
        background); never raises. A success ends the pause after a failure."""
        answer = {}
        thread = threading.Thread(target=lambda: answer.update(ok=self.events.fetch(["__ping__"], probe=True)
                                                               is not None), name="state-store-ping", daemon=True)
        thread.start()
        thread.join(timeout)
        return bool(answer.get("ok"))


def store_stamps(features, users, rows) -> tuple[list, bool]:
    """Per user, the store-feature part of a ranked list's stamp, and whether rows were pinned for the
    rank stage: None without store features or with point-in-time ones (fixed while a model is loaded);
    the online row as served (OnlineFeatures.pin: from `rows` when the request's lookup brought them);
    UNCACHEABLE for any other provider (its lists are never cached)."""
    if features is None:
        return [None] * len(users), False
    pin = getattr(features, "pin", None)
    if pin is not None:
        return pin(users, rows), True
    from recsys.features.provider import PointInTimeFeatures
    from recsys.serving.lists import UNCACHEABLE

    return [None if isinstance(features, PointInTimeFeatures) else UNCACHEABLE] * len(users), False
