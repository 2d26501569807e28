"""The event archive: every valid event the stream consumer read, as date-partitioned Parquet.

Where this sits: the consumer (recsys.streaming.consumer) buffers a roll of events (up to `roll_seconds` /
`roll_events`) and writes it here before it commits the roll's offsets; drift checks and retraining read
it back with `read_archive(root, start, end)` in the interactions contract (recsys.data.schema) plus
`event_id`. Layout, by the event's UTC date (event time, not arrival time):

    <root>/date=2026-11-29/<topic>+<partition>+<first offset>.parquet

Files are named like the Kafka Connect S3 sink's (topic, partition, first offset of the roll), which is what
makes a replay rewrite the same files instead of adding rows. The consumer commits offsets only at roll
boundaries, so when a consumer starts reading a partition at offset `c` (its group's committed offset), every
file of that partition with a first offset >= c holds events of a roll that was never committed, possibly
cut at other boundaries than the replay will cut them: `discard_from(partition, c)` removes them before the
replay writes its own. Files appear atomically (written to a hidden temp name, fsynced, renamed), so a crash
never leaves half a file. Readers also deduplicate by `event_id` (a producer may have sent the same event
twice: the same id at two offsets), keeping the first in time order.

One archive root per (topic, consumer group): the offsets in the names are that topic's. A topic deleted and
recreated under the same name restarts its offsets at 0, so it needs a new archive root.
"""

from __future__ import annotations

import json
import os
import re
from datetime import date, datetime, timezone
from operator import attrgetter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.data.schema import EVENT_TYPE, EVENT_TYPES, ITEM_ID, SESSION_ID, TIMESTAMP, USER_ID, VALUE

EVENT_ID = "event_id"
CONTRACT_COLUMNS = (USER_ID, ITEM_ID, TIMESTAMP, EVENT_TYPE, VALUE, SESSION_ID, EVENT_ID)
SCHEMA = pa.schema([(USER_ID, pa.string()), (ITEM_ID, pa.string()), (TIMESTAMP, pa.timestamp("us", tz="UTC")),
                    (EVENT_TYPE, pa.string()), (VALUE, pa.float64()), (SESSION_ID, pa.string()),
                    (EVENT_ID, pa.string()), ("extra", pa.string()), ("kafka_partition", pa.int32()),
                    ("kafka_offset", pa.int64())])
_DATE_DIR = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


class EventArchive:
    """Buffers events per partition and writes a roll; `discard_from` cleans a partition taken over."""

    def __init__(self, root: str | Path, topic: str, fsync: bool = True):
        self.root, self.topic, self.fsync = Path(root), topic, fsync
        self._buffer: dict[int, tuple[list, list]] = {}  # partition -> (events, offsets)

    def __len__(self) -> int:
        return sum(len(events) for events, _ in self._buffer.values())

    def add(self, partition: int, offset: int, event) -> None:
        """Buffer one valid event (recsys.streaming.events.StreamEvent) read at (partition, offset)."""
        buffer = self._buffer.get(partition)
        if buffer is None:
            buffer = self._buffer[partition] = ([], [])
        buffer[0].append(event)
        buffer[1].append(offset)

    @staticmethod
    def _columns(events: list, offsets: list, partition: int) -> list[pa.Array]:
        """The SCHEMA columns of buffered events (one C-level pass per attribute)."""
        micros = np.rint(np.fromiter(map(attrgetter("seconds"), events), np.float64, len(events)) * 1e6)
        extra = [json.dumps(e.extra, sort_keys=True, default=str) if e.extra else None for e in events]
        values = [list(map(attrgetter(name), events)) for name in ("user_id", "item_id")]
        values += [micros.astype(np.int64)]
        values += [list(map(attrgetter(name), events)) for name in ("event_type", "value", "session_id", "event_id")]
        values += [extra, np.full(len(events), partition, np.int32), offsets]
        return [pa.array(v, type=f.type) for v, f in zip(values, SCHEMA)]

    def roll(self) -> list[Path]:
        """Write the buffered events, durable on return; empties the buffer."""
        return self.write(self.take())

    def take(self) -> dict:
        """The buffer, handed over (to a background writer: recsys.streaming.roll); the archive's is empty."""
        buffer, self._buffer = self._buffer, {}
        return buffer

    def write(self, buffer: dict) -> list[Path]:
        """Write a taken buffer: one file per partition and date, each under a temp name, all fsynced (in
        parallel: one fsync costs milliseconds, a backlog's roll spans many dates), renamed, their directories
        fsynced. Only files are touched, so this may run in another thread than `add`."""
        staged = []
        for partition, (events, offsets) in sorted(buffer.items()):
            table = pa.Table.from_arrays(self._columns(events, offsets, partition), schema=SCHEMA)
            days = table.column(TIMESTAMP).cast(pa.int64()).to_numpy() // 86_400_000_000
            if (days[1:] < days[:-1]).any():  # out of date order (a backlog's partitions interleave): sort once
                order = np.argsort(days, kind="stable")
                table, days = table.take(order), days[order]
            starts = np.flatnonzero(np.r_[True, days[1:] != days[:-1]])
            for start, end in zip(starts, [*starts[1:], len(days)]):
                day_name = datetime.fromtimestamp(int(days[start]) * 86400, tz=timezone.utc).date().isoformat()
                staged.append(self._stage(table.slice(start, end - start), day_name, partition, offsets[0]))
        if self.fsync and staged:
            _parallel(_fsync_file, [temp for temp, _ in staged])
        for temp, final in staged:
            os.replace(temp, final)
        if self.fsync and staged:
            _parallel(_fsync_dir, sorted({final.parent for _, final in staged}))
        return [final for _, final in staged]

    def drop(self) -> None:
        """Forget the buffer (its offsets were not committed: the events will be read again)."""
        self._buffer.clear()

    def file_name(self, partition: int, first_offset: int) -> str:
        return f"{self.topic}+{partition}+{first_offset:012d}.parquet"

    def _stage(self, table: pa.Table, day: str, partition: int, first_offset: int) -> tuple[Path, Path]:
        directory = self.root / f"date={day}"
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / self.file_name(partition, first_offset)
        temp = directory / f".{final.name}.tmp"
        pq.write_table(table, temp)
        return temp, final

    def discard_from(self, partition: int, offset: int) -> list[Path]:
        """Remove this partition's files whose roll starts at or after `offset` (an uncommitted attempt),
        and any temp file left by a crash; returns what was removed."""
        prefix = f"{self.topic}+{partition}+"
        removed = []
        if not self.root.is_dir():
            return removed
        for directory in self.root.iterdir():
            if not _DATE_DIR.match(directory.name):
                continue
            for entry in os.scandir(directory):
                name = entry.name
                if name.startswith(f".{prefix}") and name.endswith(".tmp"):
                    os.unlink(entry.path)
                elif name.startswith(prefix) and name.endswith(".parquet"):
                    first = int(name[len(prefix):-len(".parquet")])
                    if first >= offset:
                        os.unlink(entry.path)
                        removed.append(Path(entry.path))
        return removed


def _parallel(fn, items) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(min(16, len(items))) as pool:
        list(pool.map(fn, items))


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _day(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def read_archive(root: str | Path, start=None, end=None, event_types=EVENT_TYPES,
                 columns: tuple[str, ...] = CONTRACT_COLUMNS) -> pd.DataFrame:
    """The archived events with `start <= timestamp < end` (dates, datetimes or ISO strings; naive = UTC;
    None = unbounded), one row per event_id, in time order.

    Columns: the interactions contract (user_id, item_id, timestamp UTC, event_type, value, session_id) and
    event_id; `columns` may add "extra" (other event fields as JSON), "kafka_partition", "kafka_offset".
    `event_types`: the data contract's by default, so the frame validates as interactions (impressions are
    archived too: pass ("impression",) or None for every type)."""
    lo, hi = (_day(start) if start is not None else None), (_day(end) if end is not None else None)
    files = []
    root = Path(root)
    for directory in sorted(root.iterdir()) if root.is_dir() else []:
        match = _DATE_DIR.match(directory.name)
        if not match:
            continue
        day = pd.Timestamp(match.group(1), tz="UTC")
        if (lo is not None and day + pd.Timedelta(days=1) <= lo) or (hi is not None and day >= hi):
            continue
        files += sorted(p for p in directory.glob("*.parquet") if not p.name.startswith("."))
    wanted = list(dict.fromkeys((*columns, EVENT_ID, TIMESTAMP, EVENT_TYPE)))
    tables = [pq.read_table(f, columns=wanted, schema=SCHEMA) for f in files]
    frame = (pa.concat_tables(tables) if tables else SCHEMA.empty_table().select(wanted)).to_pandas()
    keep = np.ones(len(frame), dtype=bool)
    if lo is not None:
        keep &= (frame[TIMESTAMP] >= lo).to_numpy()
    if hi is not None:
        keep &= (frame[TIMESTAMP] < hi).to_numpy()
    if event_types is not None:
        keep &= frame[EVENT_TYPE].isin(list(event_types)).to_numpy()
    frame = frame[keep].sort_values([TIMESTAMP, EVENT_ID], kind="stable")
    frame = frame.drop_duplicates(EVENT_ID, keep="first")
    return frame[list(columns)].reset_index(drop=True)


def archive_dates(root: str | Path) -> list[date]:
    """The UTC dates the archive holds events for."""
    root = Path(root)
    return sorted(date.fromisoformat(m.group(1)) for d in (root.iterdir() if root.is_dir() else [])
                  if (m := _DATE_DIR.match(d.name)))
