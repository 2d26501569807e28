"""The service's durable event log without Kafka: every accepted /feedback event, on disk before the answer.

Where this sits: in direct mode (no `KAFKA_BOOTSTRAP_SERVERS`) the service appends each accepted event to
this file and fsyncs it before /feedback answers 200, then applies it in process. Every process serving the
same deployment on the host (BentoML workers, a second `bentoml serve`) appends to and tails the same file,
so an event one worker accepted reaches the others on their next request (recsys/serving/state.py reads the
new lines, deduplicated by event id), and a restarted service replays it: no acknowledged event is lost.

Format: JSON lines, each the event contract of recsys.streaming.events (what Kafka would carry). Appends use
one `write` on an `O_APPEND` descriptor per batch, so concurrent writers' lines never interleave; a reader
only takes complete lines (a line still being written is read next time). Lines that do not parse are
skipped and counted. The file only grows: ~250 bytes an event (a million events replay in a few seconds
at start-up); move it aside, with the service stopped, when a newly trained bundle already holds its events.

Hand-written: a JSON-lines append with fsync; sqlite's WAL would do the durability but not the cheap
"anything new?" check a request makes (one fstat).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections import Counter
from datetime import datetime
from pathlib import Path

log = logging.getLogger(__name__)
CHUNK = 32 * 2**20  # bytes read per call at most (a replay reads the log in pieces)


class EventLog:
    """The writing end, one per process: `append` returns once the events are on disk."""

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()

    def append(self, events: list[dict]) -> None:
        """Write and fsync contract events (dicts with event_id, user_id, item_id, event_type, timestamp)."""
        data = b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events)
        with self._lock:
            written = os.write(self._fd, data)
            if written != len(data):  # a full disk: the caller must not acknowledge these events
                raise OSError(f"event log {self.path}: wrote {written} of {len(data)} bytes")
            os.fsync(self._fd)

    def reader(self) -> LogReader:
        return LogReader(self.path)

    def close(self) -> None:
        os.close(self._fd)


class LogReader:
    """A reading position in the log (one per online state): `new()` returns the events appended since the
    last call as (user_id, item_id, event_type, seconds, event_id) tuples, oldest first."""

    def __init__(self, path):
        self.path = Path(path)
        self._file = None
        self.offset = 0
        self.counts: Counter = Counter()
        self._lock = threading.Lock()

    def new(self, max_bytes: int = CHUNK) -> list[tuple]:
        with self._lock:
            if self._file is None:
                if not self.path.exists():
                    return []
                self._file = self.path.open("rb")
            size = os.fstat(self._file.fileno()).st_size
            if size <= self.offset:
                return []
            self._file.seek(self.offset)
            chunk = self._file.read(min(size - self.offset, max_bytes))
            end = chunk.rfind(b"\n") + 1
            self.offset += end
        out = []
        for line in chunk[:end].splitlines():
            try:
                e = json.loads(line)
                seconds = datetime.fromisoformat(e["timestamp"]).timestamp()
                out.append((str(e["user_id"]), str(e["item_id"]), str(e["event_type"]), seconds, str(e["event_id"])))
            except (ValueError, KeyError, TypeError, AttributeError):
                self.counts["bad_lines"] += 1
                log.warning("event log %s: skipping a line that is not a contract event: %r", self.path, line[:200])
        self.counts["events"] += len(out)
        return out

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
