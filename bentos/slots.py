"""Model slots: one served bundle each (control, treatment, shadow), swapped whole on promotion.

Hot reload in two halves so no request ever sees a half-loaded model: `ModelSlot.check` runs in a
background thread, resolves the reference and, when it points at a new version, fetches, loads and warms
up the new Recommender completely (the first call of a TensorFlow tower traces a graph: that must not
happen on a user's request). `install` then replaces the slot's `current` in one reference assignment; the
service calls it on the thread that serves requests, so a request uses either the old model or the new
one from start to finish. A failed check leaves the old model serving and records the error.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from bentos.sources import Resolved, fetch, resolve
from recsys.registry.bundle import load_bundle

log = logging.getLogger(__name__)
RETRY_SECONDS = 300.0  # a version that failed to load is fetched again only after this long


class KnownBroken(RuntimeError):
    """The reference still points at a version that failed to load less than RETRY_SECONDS ago."""


@dataclass(frozen=True)
class Loaded:
    recommender: Any
    meta: dict
    resolved: Resolved
    online: Any = None  # the online feature provider attached by the prepare hook (None: no store features)
    loaded_at: float = field(default_factory=time.time)

    @property
    def version(self) -> str:
        """The bundle's version: what responses and metrics report."""
        return str(self.meta.get("version") or self.resolved.version)


class ModelSlot:
    def __init__(self, name: str, ref: str, tracking_uri: str, cache_dir: str,
                 prepare: Callable[[Any], Any] | None = None):
        self.name, self.ref = name, ref
        self.tracking_uri, self.cache_dir = tracking_uri, cache_dir
        self.prepare = prepare  # wires hooks and warms up a freshly loaded Recommender before it serves
        self.current: Loaded | None = None
        self.last_error: str | None = None
        self._failed: tuple[str, float] | None = None  # (key, when): a broken version is not re-fetched
        self.failures = 0  # load failures so far (a known-broken version skipped does not count)

    def check(self) -> Loaded | None:
        """A fully loaded new version when the reference moved, else None. Raises when the reference
        resolves to nothing or the bundle fails to load (the caller keeps serving the old one)."""
        resolved = resolve(self.ref, self.tracking_uri)
        if self.current is not None and resolved.key == self.current.resolved.key:
            return None
        if self._failed and self._failed[0] == resolved.key and time.monotonic() - self._failed[1] < RETRY_SECONDS:
            raise KnownBroken(resolved.key)
        try:
            resolved, path = fetch(resolved, self.tracking_uri, self.cache_dir)
            if self.current is not None and resolved.key == self.current.resolved.key:
                return None
            started = time.perf_counter()
            recommender, meta = load_bundle(path)
            online = self.prepare(recommender) if self.prepare is not None else None
        except Exception:
            self._failed = (resolved.key, time.monotonic())
            raise
        self._failed = None
        log.info("slot %s: loaded %s (version %s) in %.1fs", self.name, resolved.key, meta.get("version"),
                 time.perf_counter() - started)
        return Loaded(recommender, meta, resolved, online)

    def try_check(self) -> Loaded | None:
        try:
            loaded = self.check()
        except KnownBroken:
            return None  # last_error still says why
        except Exception as error:  # noqa: BLE001 - keep serving the old version, report why
            self.last_error = f"{type(error).__name__}: {error}"
            self.failures += 1
            log.warning("slot %s: cannot load %s: %s", self.name, self.ref, self.last_error)
            return None
        self.last_error = None
        return loaded

    def install(self, loaded: Loaded) -> Loaded | None:
        """Serve `loaded` from now on; returns the version it replaces."""
        previous, self.current = self.current, loaded
        return previous
