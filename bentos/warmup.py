"""Ranked lists computed off the request path: after a load, and after a user's history changes.

The Recommender caches each known user's ranked candidates until their history or the model changes
(recsys/serving/ranked.py); a request that finds none computes it (~5 ms on a 10k catalogue instead of
~0.6 ms). A `Warmer` fills the cache on one daemon thread, so requests rarely pay that:
- users whose feedback was just applied in place (`touch`) first: their next request is likely soon;
- then every known user without an entry, most recently active first, in small batches through the
  batched path (`Recommender.warm`), until the cache's memory budget is reached.
While requests are being served it yields half of the time (it sleeps as long as its last batch took), so
a warm-up running under load costs request latency little and never starves the event loop. It follows its
slot: after a hot reload it warms the new version (whose cache the loader already primed with the old
version's most recent users before the swap, `prime`).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import deque
from typing import Callable

log = logging.getLogger(__name__)
BLOCK = 16  # users per batch: ~30-50 ms of work on the 10k bench, short enough to interleave with requests
BUSY_SECONDS = 0.5  # a request this recent means the service is serving: yield half of the time


class Warmer:
    def __init__(self, current: Callable[[], object | None], busy: Callable[[], bool] | None = None,
                 name: str = "warm-up"):
        self.current, self.busy = current, busy or (lambda: False)
        self.name = name
        self._urgent: deque[str] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._recommender = None  # the version the pending warm-up list belongs to
        self._pending: list[str] = []
        self.done = 0  # entries computed by this warmer
        self.finished_at: float | None = None  # when the last full warm-up ended (None while running)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def touch(self, user_id: str) -> None:
        """`user_id`'s history just changed: recompute their ranked list soon."""
        self._urgent.append(user_id)
        self._wake.set()

    def poke(self) -> None:
        """Work is waiting (lists to explain): start a round now instead of within a second."""
        self._wake.set()

    def restart(self) -> None:
        """The slot serves a new version: warm all of its known users."""
        self._recommender = None
        self.finished_at = None
        self._wake.set()

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            rec = self.current()
            if rec is None or not rec.ranked.enabled:
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            try:  # lists computed on request since the last round: their next pages' explanations
                rec.explain_deferred()
            except Exception:  # noqa: BLE001 - never take the service down over an explanation
                log.exception("%s: explaining lists failed", self.name)
            if rec is not self._recommender:  # a new version: its whole warm-up list
                self._recommender, self._pending = rec, list(reversed(rec.warm_order()))
                self.finished_at = None
            urgent = []
            while self._urgent and len(urgent) < BLOCK:
                urgent.append(self._urgent.popleft())
            block = [u for u in dict.fromkeys(urgent) if u in rec.history]
            while len(block) < BLOCK and self._pending and not urgent:
                user = self._pending.pop()
                if user not in rec.ranked:
                    block.append(user)
            if not block:
                if self.finished_at is None and not self._pending:
                    self.finished_at = time.time()
                    log.info("%s: %d ranked lists cached (%.0f MiB)", self.name, len(rec.ranked),
                             rec.ranked.nbytes / 2**20)
                    gc.freeze()  # the cached lists are long-lived: keep them out of full collections
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            started = time.perf_counter()
            try:
                self.done += rec.warm(block)
            except Exception:  # noqa: BLE001 - a warm-up failure must never take the service down
                log.exception("%s: computing ranked lists failed", self.name)
                self._pending = []
            if rec.ranked.nbytes >= rec.ranked.max_bytes:
                self._pending = []  # full: what is left is computed on request
            if self.busy():
                time.sleep(time.perf_counter() - started)


def prime(new, old, seconds: float) -> int:
    """Before a hot-reload swap: compute `new`'s ranked lists for the users `old` served most recently,
    for at most `seconds`. Returns how many."""
    if old is None or seconds <= 0 or not new.ranked.enabled:
        return 0
    deadline = time.monotonic() + seconds
    return new.warm(old.ranked.users(), stop=lambda: time.monotonic() > deadline)
