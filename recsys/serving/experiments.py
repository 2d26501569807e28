"""Online experiments without a framework: A/B assignment, the experiment log, shadow scoring.

- `Experiment.assign(user_id)`: a user's variant from SHA-256 of "<experiment>/<user id>" mapped to [0, 1)
  and cut by the variants' traffic weights. Deterministic across processes, machines and restarts (Python's
  hash() is salted per process), independent between experiments (the name is in the hash), and stable
  when traffic is only added at the end of the variant list.
- `ExperimentLog`: JSON lines of what was served (impressions, with experiment and variant) and what users
  did (feedback); `python -m recsys.serving.readout --log FILE` compares variants from it.
- `Shadow`: scores a second Recommender on the same request in a background thread and logs how its list
  differs from the served one; it is never served, records no impressions and never fails the request.
The service (bentos/) owns which Recommender each variant runs (model versions or `Recommender.variant`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


def bucket(user_id: str, experiment: str) -> float:
    """Uniform in [0, 1): the first 8 bytes of SHA-256("<experiment>/<user_id>") over 2**64."""
    digest = hashlib.sha256(f"{experiment}/{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclass
class Experiment:
    """`variants`: name -> traffic weight (any positive scale; normalised), in a fixed order."""

    name: str
    variants: dict[str, float]

    def __post_init__(self):
        if not self.variants or any(float(w) < 0 for w in self.variants.values()):
            raise ValueError(f"experiment {self.name!r} needs variants with non-negative weights")
        total = float(sum(self.variants.values()))
        if total <= 0:
            raise ValueError(f"experiment {self.name!r}: weights sum to 0")
        self._cuts, acc = [], 0.0
        for variant, weight in self.variants.items():
            acc += float(weight) / total
            self._cuts.append((acc, variant))

    def assign(self, user_id: str) -> str:
        b = bucket(str(user_id), self.name)
        for cut, variant in self._cuts:
            if b < cut:
                return variant
        return self._cuts[-1][1]  # b within rounding of 1.0

    @classmethod
    def from_config(cls, config: dict) -> Experiment:
        """{"name": ..., "variants": {"control": 50, "candidate": 50}}."""
        return cls(str(config["name"]), {str(k): float(v) for k, v in dict(config["variants"]).items()})


class ExperimentLog:
    """Append-only JSON lines, one object per line, written under a lock (threads of one process). Each
    process should write its own file (e.g. suffix the worker id); the readout reads many files."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def write(self, record: dict) -> None:
        line = json.dumps({"ts": time.time(), **record}, separators=(",", ":"), default=str)
        with self._lock, self.path.open("a") as f:
            f.write(line + "\n")

    def impressions(self, experiment: str, variant: str, user_id: str, items: list[str],
                    model_version: str | None = None, request_id: str | None = None) -> None:
        self.write({"type": "impression", "experiment": experiment, "variant": variant, "user_id": str(user_id),
                    "items": [str(i) for i in items], "model_version": model_version, "request_id": request_id})

    def feedback(self, user_id: str, item_id: str, event_type: str, timestamp: float | None = None) -> None:
        record = {"type": "feedback", "user_id": str(user_id), "item_id": str(item_id), "event_type": event_type}
        if timestamp is not None:
            record["ts"] = float(timestamp)
        self.write(record)


def compare_lists(served: list[str], shadow: list[str]) -> dict:
    """How far the shadow list is from the served one: overlap@k (shared share), and whether the top
    item agrees."""
    k = max(len(served), 1)
    return {"overlap": len(set(served) & set(shadow)) / k,
            "same_top": bool(served and shadow and served[0] == shadow[0])}


class Shadow:
    """Run `recommender` on live requests next to the served one; log, never serve.

    `submit(...)` returns at once: a single background thread scores and logs; when `max_pending` requests
    wait, new ones are dropped (counted in `dropped`) so a slow shadow never slows or grows the service.
    The shadow's own impressions are not recorded (they were never shown)."""

    def __init__(self, recommender, log: ExperimentLog, name: str = "shadow", max_pending: int = 1000,
                 background: bool = True):
        self.recommender = recommender.variant(filters={"record_impressions": False})
        self.recommender.observer = None
        self.log, self.name, self.background = log, name, background
        self.dropped = self.failed = self.scored = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max_pending)
        self._thread = None

    def submit(self, user_id, k, exclude, context, served: list[dict]) -> None:
        request = (user_id, k, list(exclude or ()), context, [r["item_id"] for r in served])
        if not self.background:
            self._score(*request)
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"shadow-{self.name}", daemon=True)
            self._thread.start()
        try:
            self._queue.put_nowait(request)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            self._score(*request)

    def _score(self, user_id, k, exclude, context, served) -> None:
        try:
            t0 = time.perf_counter()
            items = [r["item_id"] for r in self.recommender.recommend(user_id, k, exclude, context)]
            self.log.write({"type": "shadow", "shadow": self.name, "model_version": self.recommender.version,
                            "user_id": str(user_id), "served": served, "items": items,
                            "seconds": round(time.perf_counter() - t0, 6), **compare_lists(served, items)})
            self.scored += 1
        except Exception:  # noqa: BLE001 - a shadow must never affect serving; count and log it
            self.failed += 1
            log.exception("shadow %s failed for user %s", self.name, user_id)

    def close(self, timeout: float = 5.0) -> None:
        """Finish queued requests (up to `timeout`) and stop the thread."""
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                pass
            self._thread.join(timeout)
            self._thread = None
