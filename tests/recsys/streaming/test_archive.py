"""The event archive (recsys.streaming.archive): a replay after a crash rewrites the same files and never
duplicates a row, even when the replay cuts its rolls at other offsets; readers get the interactions
contract, one row per event_id, within [start, end)."""

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from recsys.data.validation import validate_interactions
from recsys.streaming.archive import EventArchive, archive_dates, read_archive
from tests.recsys.streaming.conftest import parsed

DAY = 86400.0
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


def stream(partition: int, n: int) -> list:
    """(offset, event) of one partition: events every 2 h, so they span two dates."""
    return [(o, parsed(f"u{partition}", 100 * partition + o, T0 + 7200 * o, "view")) for o in range(n)]


def raw_rows(root: Path) -> pd.DataFrame:
    return pd.concat([pq.read_table(p).to_pandas() for p in root.glob("date=*/*.parquet")], ignore_index=True)


def roll(archive: EventArchive, parts: dict) -> list[Path]:
    for partition, events in parts.items():
        for offset, event in events:
            archive.add(partition, offset, event)
    return archive.roll()


def test_replay_with_other_boundaries_rewrites_without_duplicates(tmp_path):
    p0, p1 = stream(0, 30), stream(1, 10)
    archive = EventArchive(tmp_path, "t")
    roll(archive, {0: p0[:10]})  # committed: partition 0 at offset 10, partition 1 at 0
    crashed = roll(archive, {0: p0[10:25], 1: p1})  # written, never committed
    assert {p.name for p in crashed} == {"t+0+000000000010.parquet", "t+1+000000000000.parquet"}
    assert len(crashed) == 4  # partition 0's roll spans three dates
    assert len(raw_rows(tmp_path)) == 35
    (tmp_path / "date=2026-01-02" / ".t+0+000000000012.parquet.tmp").write_bytes(b"half a file")

    restarted = EventArchive(tmp_path, "t")  # takes the partitions over from the committed offsets
    removed = restarted.discard_from(0, 10) + restarted.discard_from(1, 0)
    assert sorted(removed) == sorted(crashed)  # every date's file of the uncommitted roll, nothing committed
    assert not list(tmp_path.glob("date=*/.*"))  # the crash's temp file went too
    roll(restarted, {0: p0[10:14]})  # other boundaries than before the crash
    roll(restarted, {0: p0[14:], 1: p1})

    rows = raw_rows(tmp_path)
    assert len(rows) == 40 and rows.event_id.is_unique  # nothing lost, nothing twice, without reader dedup
    got = read_archive(tmp_path)
    assert sorted(got.event_id) == sorted(e.event_id for _, e in p0 + p1)
    assert archive_dates(tmp_path) == [pd.Timestamp("2026-01-01").date(), pd.Timestamp("2026-01-02").date(),
                                       pd.Timestamp("2026-01-03").date()]


def test_read_archive_contract_window_types_and_dedup(tmp_path):
    archive = EventArchive(tmp_path, "t", fsync=False)
    events = [(0, parsed("u1", 1, T0 + 10, "click", session_id="s1", variant="b")),
              (1, parsed("u1", 2, T0 + DAY + 10, "booking", value=99.5)),
              (2, parsed("u1", 3, T0 + DAY + 20, "impression")),
              (3, parsed("u1", 1, T0 + 10, "click", session_id="s1", variant="b"))]  # same event_id again
    roll(archive, {0: events})
    got = read_archive(tmp_path)
    assert list(got.columns) == ["user_id", "item_id", "timestamp", "event_type", "value", "session_id", "event_id"]
    assert list(got.event_id) == ["u1-1", "u1-2"] and list(got.event_type) == ["click", "booking"]
    assert str(got.timestamp.dtype) == "datetime64[us, UTC]" and got.timestamp[0].timestamp() == T0 + 10
    assert got.value[1] == 99.5 and got.session_id[0] == "s1"
    validate_interactions(got)  # what drift checks and retraining read
    assert list(read_archive(tmp_path, "2026-01-02", "2026-01-03").event_id) == ["u1-2"]
    assert list(read_archive(tmp_path, end=pd.Timestamp(T0 + 10, unit="s")).event_id) == []  # end exclusive
    everything = read_archive(tmp_path, event_types=None, columns=("event_id", "extra", "kafka_offset"))
    assert list(everything.event_id) == ["u1-1", "u1-2", "u1-3"]
    assert everything.extra[0] == '{"variant": "b"}' and everything.kafka_offset[0] == 0
    assert read_archive(tmp_path / "nothing-here").empty


def test_the_drift_pipeline_reads_the_archive_as_an_event_source(tmp_path):
    from recsys.data.windows import EventSource

    archive = EventArchive(tmp_path, "t", fsync=False)
    roll(archive, {0: stream(0, 30), 1: stream(1, 5)})
    source = EventSource("archive", {"root": str(tmp_path)})
    week = source.read(pd.Timestamp("2026-01-01", tz="UTC"), pd.Timestamp("2026-01-02", tz="UTC"))
    assert len(week.interactions) == 12 + 5 and week.interactions.timestamp.is_monotonic_increasing
    assert source.end() == pd.Timestamp(T0 + 7200 * 29, unit="s", tz="UTC") + pd.Timedelta(microseconds=1)
