"""A roll written in the background: the archive files and the dead letters of what the consumer applied.

Where this sits: recsys.streaming.consumer starts a roll every `archive.roll_seconds` (its rows and derived
views are already written) and goes on applying batches while a single background thread writes the roll's
Parquet files (fsync included) and produces its dead letters, acknowledged. When the roll is done, the
offsets it covers are durable and the consumer commits them; a roll that failed raises in the consumer, which
reads again from the last durable offset (and rewrites the same files: they are named by their first
offset). One roll at a time; rebalances, failures and shutdown wait for it. Writing in the background keeps
a roll's second or so of Parquet encoding and fsyncs out of the batches' latency.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor


class BackgroundRoll:
    def __init__(self, archive, dlq, dlq_topic: str, observe=None):
        self.archive, self.dlq, self.dlq_topic = archive, dlq, dlq_topic
        self.observe = observe  # observe(stage, seconds): the consumer's stage metric
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="roll")
        self._running: tuple[Future, dict] | None = None

    @property
    def busy(self) -> bool:
        return self._running is not None

    def start(self, offsets: dict, letters: list[dict]) -> None:
        """Write the archive's buffer and `letters`; `offsets` (partition -> next offset) become durable."""
        assert self._running is None, "one roll at a time"
        buffer = self.archive.take() if self.archive is not None else None
        self._running = (self._pool.submit(self._write, buffer, letters), dict(offsets))

    def finish(self, wait: bool = False) -> dict | None:
        """The offsets the finished roll made durable (its error raised), or None when none finished."""
        if self._running is None or not (wait or self._running[0].done()):
            return None
        future, offsets = self._running
        self._running = None
        future.result()
        return offsets

    def abandon(self) -> None:
        """Wait for a running roll and forget it (what it covers will be read and rolled again)."""
        if self._running is not None:
            self._running[0].exception()
            self._running = None

    def close(self) -> None:
        self.abandon()
        self._pool.shutdown(wait=True)

    def _write(self, buffer, letters: list[dict]) -> None:
        if buffer is not None:
            self._timed("archive", lambda: self.archive.write(buffer))
        self._timed("dlq", lambda: self._send(letters))

    def _send(self, letters: list[dict]) -> None:
        futures = [self.dlq.send(self.dlq_topic, key=(letter["key"] or "").encode() or None,
                                 value=json.dumps(letter).encode()) for letter in letters]
        if futures:
            self.dlq.flush(timeout=30)
        for future in futures:
            future.get(timeout=0)  # a letter not acknowledged fails the roll: no commit

    def _timed(self, stage: str, fn) -> None:
        started = time.perf_counter()
        fn()
        if self.observe is not None:
            self.observe(stage, time.perf_counter() - started)
