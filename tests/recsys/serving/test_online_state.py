"""The online state (recsys/serving/state.py): events applied once by id, never before the bundle's own
history; processes sharing the event log (direct mode) or the online store rows (Kafka mode; a real Feast
sqlite store, the rows written as the stream consumer writes them) answer alike after an event; a restart
replays the log; the log's lines stay whole under concurrent writers."""

import subprocess
import sys
from datetime import datetime, timezone

import pandas as pd
import pytest

from recsys.features.store import apply_repo
from recsys.serving.eventlog import EventLog
from recsys.serving.state import StoreRows
from recsys.streaming.events import parse
from recsys.streaming.state import OnlineEventStore, UserEvents
from tests.feature_repo.repo import PROJECT_ROOT, copy_repo, write_features

QUIET = {"filters": {"record_impressions": False}}  # answers depend on the events only, not on what was shown


def contract(user, item, kind, seconds, event_id) -> dict:
    """A contract event as /feedback accepts it (ISO time)."""
    return {"v": 1, "event_id": event_id, "user_id": user, "item_id": item, "event_type": kind,
            "timestamp": datetime.fromtimestamp(seconds, timezone.utc).isoformat()}


def local(event) -> dict:
    """The event as the service applies it in process (bentos/runtime.py apply_feedback)."""
    return {**{k: event[k] for k in ("user_id", "item_id", "event_type", "event_id")},
            "timestamp": datetime.fromisoformat(event["timestamp"]).timestamp()}


def items(answer) -> list[str]:
    return [r["item_id"] for r in answer]


def test_an_event_id_applies_once_and_never_before_the_bundles_history(make):
    rec = make(QUIET)
    user = "u3"
    last = float(rec.history.timestamps(user)[-1])
    item = items(rec.recommend(user, 1))[0]
    before = len(rec.history.items(user))
    event = {"user_id": user, "item_id": item, "event_type": "click", "timestamp": last + 60, "event_id": "e1"}
    assert rec.record_feedback(event)["applied"] == 1
    assert rec.record_feedback(event)["applied"] == 0  # redelivered: nothing
    assert len(rec.history.items(user)) == before + 1 and item not in items(rec.recommend(user, 5))
    old = {**event, "event_id": "e0", "timestamp": last - 60}  # older than the bundle's newest: in it already
    assert rec.record_feedback(old)["applied"] == 0
    assert rec.state.counts["duplicates"] == 1 and rec.state.counts["in_bundle"] == 1
    bulk = pd.DataFrame([event, {**event, "event_id": "e2", "timestamp": last + 120}])  # the DataFrame path too
    assert rec.record_feedback(bulk)["applied"] == 1 and len(rec.history.items(user)) == before + 2
    assert rec.record_feedback({k: v for k, v in old.items() if k != "event_id"})["applied"] == 1  # no id: as given


def test_processes_sharing_the_event_log_answer_alike_and_a_restart_replays_it(make, tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    a, b = make(QUIET), make(QUIET)
    for rec in (a, b):
        rec.state.use_log(log.reader())
    users = ["u2", "v5", "newcomer"]
    before = {u: b.recommend(u, 4) for u in users}  # b has these lists cached before the events
    accepted = []
    for n, user in enumerate(users):
        item = items(a.recommend(user, 1))[0]
        event = contract(user, item, "booking", 2e9 + n, f"ev-{n}")
        log.append([event])  # on disk before /feedback answers ...
        a.record_feedback(local(event))  # ... then applied in the process that took it
        accepted.append((user, item))
    for user, item in accepted:
        got = b.recommend(user, 4)
        assert got == a.recommend(user, 4) and item not in items(got) and got != before[user]
    assert all(r["stage"] != "cold_start" for r in b.recommend("newcomer", 4))  # personal after one booking
    assert b.state.counts["applied"] == 3 and a.state.counts["duplicates"] == 3  # a reads its own back: no-ops
    restarted = make(QUIET)
    assert restarted.state.use_log(log.reader())["applied"] == 3
    assert all(restarted.recommend(u, 4) == a.recommend(u, 4) for u in users)


def test_a_hot_reload_keeps_the_events_and_the_log_does_not_apply_them_twice(make, tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    old = make(QUIET)
    old.state.use_log(log.reader())
    event = contract("u6", "b3", "click", 2e9, "reload-1")
    log.append([event])
    old.record_feedback(local(event))
    new = make(QUIET)
    new.adopt_online_state(old)  # the journal carries the event (and its id) over
    new.state.use_log(log.reader())
    assert new.state.counts["duplicates"] == 1 and list(new.history.items("u6")).count(new.catalog.index["b3"]) == 1
    assert new.recommend("u6", 4) == old.recommend("u6", 4)


def test_concurrent_writers_keep_lines_whole_and_a_reader_skips_what_it_cannot_parse(tmp_path):
    path = tmp_path / "events.jsonl"
    writer = (f"import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r})\n"
              "from recsys.serving.eventlog import EventLog\n"
              "log = EventLog(sys.argv[1])\n"
              "for n in range(400):\n"
              "    log.append([{'event_id': f'{sys.argv[2]}-{n}', 'user_id': 'u' + 'x' * 300, 'item_id': 'i',\n"
              "                 'event_type': 'view', 'timestamp': '2030-01-01T00:00:00+00:00'}])\n")
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), name]) for name in ("a", "b")]
    assert all(p.wait(timeout=60) == 0 for p in procs)
    with path.open("ab") as f:
        f.write(b"not json\n{\"event_id\": \"half")  # a bad line, and a line still being written
    reader = EventLog(path).reader()
    got = reader.new()
    assert sorted(e[4] for e in got) == sorted(f"{w}-{n}" for w in "ab" for n in range(400))
    assert reader.counts["bad_lines"] == 1 and reader.new() == []
    with path.open("ab") as f:
        f.write(b'", "user_id": "u", "item_id": "i", "event_type": "view", "timestamp": "2030-01-01T00:00:00Z"}\n')
    assert [e[4] for e in reader.new()] == ["half"]  # completed: read once, whole


@pytest.fixture(scope="module")
def store_repo(tmp_path_factory, tiny_dataset):
    repo = copy_repo(tmp_path_factory.mktemp("state-store"))
    write_features(repo, tiny_dataset.interactions, tiny_dataset.items)
    apply_repo(repo)
    return repo


def write_rows(store: OnlineEventStore, events: list[dict]) -> None:
    """What the stream consumer does with a batch: each user's row read, merged (idempotent), written."""
    parsed = [parse(e) for e in events]
    users = sorted({e.user_id for e in parsed})
    rows = dict(zip(users, store.read(users)))
    store.write({u: rows[u].merge([e for e in parsed if e.user_id == u])[0] for u in users})


@pytest.mark.slow
def test_replicas_reading_the_store_rows_answer_alike_once_per_event(make, store_repo):
    writer = OnlineEventStore(store_repo)
    a, b = make(QUIET), make(QUIET)
    for rec in (a, b):
        rec.state.use_store(StoreRows(store_repo))
    user = "u4"
    first = b.recommend(user, 4)  # b's list is cached before the event
    item = first[0]["item_id"]
    write_rows(writer, [contract(user, item, "click", 2e9, "row-1")])
    got = b.recommend(user, 4)
    assert got == a.recommend(user, 4) and item not in items(got)
    assert b.state.counts["applied"] == 1 and b.ranked.counts["stale"] == 1  # the cached list was recomputed
    reads = b.state.rows.counts["reads"]
    assert b.recommend(user, 4) == got and b.state.counts["applied"] == 1  # the same row: nothing new ...
    assert b.state.rows.counts["reads"] == reads + 1  # ... for one key lookup
    # Read-your-writes: the worker that took the event applied it; the row brings it again: a no-op.
    event = contract("v2", "b1", "booking", 2e9 + 1, "row-2")
    a.record_feedback(local(event))
    write_rows(writer, [event])
    applied = a.state.counts["applied"]
    assert a.recommend("v2", 4) == b.recommend("v2", 4) and a.state.counts["applied"] == applied
    assert list(a.history.items("v2")).count(a.catalog.index["b1"]) == 1
    # An event at or before the user's newest event in the bundle is in the bundle already.
    length = len(a.history.items("u7"))
    stale = contract("u7", "a1", "click", float(a.history.timestamps("u7")[-1]) - 1, "row-3")
    write_rows(writer, [stale])
    a.recommend("u7", 4)
    assert a.state.counts["applied"] == applied and len(a.history.items("u7")) == length
    assert UserEvents() == writer.read(["nobody"])[0]


@pytest.mark.slow
def test_a_failing_store_serves_the_state_in_memory_and_counts_it(make, store_repo, tmp_path):
    broken = store_repo / "feature_store_broken.yaml"
    broken.write_text((store_repo / "feature_store.yaml").read_text()
                      .replace("../data/feast/online_store.db", str(tmp_path)))  # a directory: cannot open
    rec = make(QUIET)
    rec.state.use_store(StoreRows(store_repo, broken.name))
    assert len(rec.recommend("u1", 4)) == 4 and len(rec.recommend("u1", 4)) == 4
    assert rec.state.status()["store_errors"] == 1 and rec.state.status()["store_skipped"] == 1
    assert not rec.state.rows.ping()
