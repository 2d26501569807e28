"""A batch's effects (recsys.streaming.apply.BatchApplier) on the real online stores (sqlite, Redis): one
row per user per batch; a redelivered batch, before or after a restart (empty in-memory copy), or cut and
ordered differently, changes nothing; counters and the live vector follow the row, late events included;
undecodable or invalid messages become dead letters naming the error, field, partition and offset."""

import base64
import hashlib
import json

import numpy as np
import pytest

from recsys.features.definitions import USER_COUNTERS, USER_VECTOR
from recsys.streaming.apply import MAX_LETTER_VALUE, BatchApplier, Record
from recsys.streaming.effects import LiveVectors, counters
from recsys.streaming.events import encode
from recsys.streaming.state import OnlineEventStore, UserEvents
from tests.recsys.streaming.conftest import event, parsed

T = 1_700_000_000.0


def applier(store: OnlineEventStore, **options) -> BatchApplier:
    """What a (re)started consumer builds: its own store client and an empty in-memory copy."""
    return BatchApplier(OnlineEventStore(store.repo_path, store.fs_yaml, ordered_writes=True), "events", **options)


def records(events: list[dict], partition: int = 0, first: int = 0) -> list[Record]:
    return [Record(partition, first + i, encode(e), e["user_id"].encode()) for i, e in enumerate(events)]


def test_effects_are_idempotent_across_redelivery_restart_and_boundaries(store):
    kinds = ("view", "click", "booking")
    events = [event(user, i, T + 60 * i, kinds[i % 3]) for user in ("ap1", "ap2") for i in range(12)]
    batch = records(events)
    first = applier(store)
    result = first.apply(batch)
    assert (result.applied, result.duplicates, result.users, result.dead_letters) == (24, 0, 2, [])
    want = {u: UserEvents().merge([parsed(u, i, T + 60 * i, kinds[i % 3]) for i in range(12)])[0]
            for u in ("ap1", "ap2")}
    assert store.read(["ap1", "ap2"]) == [want["ap1"], want["ap2"]]
    names = first.counter_names()
    (_, got), = store.read_view(USER_COUNTERS, ["ap1"])
    assert got == counters(want["ap1"], names) and got["rt_events_1h"] == 12

    again = first.apply(batch)  # redelivered to the same consumer
    assert (again.applied, again.duplicates, again.users) == (0, 24, 0)
    restarted = applier(store)  # redelivered after a restart, cut in two and reordered
    halves = [restarted.apply(records(events[::-1][:10])), restarted.apply(records(events[::-1][10:]))]
    assert sum(r.duplicates for r in halves) == 24 and sum(r.applied + r.users for r in halves) == 0
    assert store.read(["ap1", "ap2"]) == [want["ap1"], want["ap2"]]

    late = applier(store).apply(records([event("ap1", 99, T + 30, "click")]))  # older than the row's newest
    assert late.applied == 1
    (_, got), = store.read_view(USER_COUNTERS, ["ap1"])
    assert got["rt_click_1h"] == counters(want["ap1"], names)["rt_click_1h"] + 1  # written, not skipped


def test_a_full_row_ignores_events_older_than_its_window(sqlite_store):
    first = applier(sqlite_store, max_events=5)
    first.apply(records([event("full", i, T + i) for i in range(8)]))
    result = applier(sqlite_store, max_events=5).apply(records([event("full", 50, T - 100)]))
    assert (result.applied, result.outdated, result.users) == (0, 1, 0)
    assert sqlite_store.read(["full"])[0].event_ids == tuple(f"full-{i}" for i in range(3, 8))


def test_poison_messages_become_dead_letters_and_the_rest_applies(sqlite_store):
    good = event("dl1", 1, T)
    batch = [Record(3, 10, b"{not json", b"dl1", 1234), Record(3, 11, b"\xff\xfe\x00", None),
             Record(3, 12, None, b"dl1"), Record(3, 13, encode({**good, "event_type": "teleport"}), b"dl1"),
             Record(3, 14, encode({**good, "timestamp": "2026-01-01T00:00:00"}), b"dl1"), Record(3, 15, encode(good))]
    result = applier(sqlite_store).apply(batch)
    assert result.applied == 1 and sqlite_store.read(["dl1"])[0].event_ids == ("dl1-1",)
    letters = result.dead_letters
    assert [(d["partition"], d["offset"], d["field"]) for d in letters] == [
        (3, 10, ""), (3, 11, ""), (3, 12, ""), (3, 13, "event_type"), (3, 14, "timestamp")]
    assert all(d["topic"] == "events" and d["error"] and d["error_type"] == "InvalidEvent" for d in letters)
    assert letters[0]["value"] == "{not json" and letters[0]["key"] == "dl1" and letters[0]["timestamp_ms"] == 1234
    assert base64.b64decode(letters[1]["value_base64"]) == b"\xff\xfe\x00" and letters[1]["key"] is None
    assert json.loads(letters[3]["value"])["event_type"] == "teleport" and "teleport" not in letters[4]["value"]
    json.dumps(letters)  # what goes to <topic>.dlq


def test_a_huge_poison_message_leaves_a_bounded_dead_letter(sqlite_store):
    huge = b"\xff" * (MAX_LETTER_VALUE + 10)
    letter, = applier(sqlite_store).apply([Record(0, 7, huge, b"k")]).dead_letters
    assert letter["value_truncated"] and letter["value_bytes"] == len(huge)
    assert letter["value_sha256"] == hashlib.sha256(huge).hexdigest()
    assert len(base64.b64decode(letter["value_base64"])) == MAX_LETTER_VALUE


def test_live_vector_view_follows_the_row(sqlite_store, two_tower):
    vectors = LiveVectors(two_tower, "v9")
    apply = applier(sqlite_store, vectors=vectors)
    apply.apply(records([event("u1", 1, T, "click", item="c"), event("u1", 2, T + 1, "impression", item="d")]))
    (_, got), = sqlite_store.read_view(USER_VECTOR, ["u1"])
    row = sqlite_store.read(["u1"])[0]
    assert got["user_vector_model"] == "v9"
    np.testing.assert_allclose(got["user_vector"], vectors.vectors(["u1"], [row])[0], rtol=1e-6)
    impressions_only = apply.apply(records([event("u1", 3, T + 2, "impression", item="a")], first=2))
    assert impressions_only.applied == 1 and "write_vector" not in impressions_only.seconds  # nothing to redo


def test_derived_views_are_coalesced_and_never_left_stale(sqlite_store):
    apply = applier(sqlite_store, derived_seconds=3600)
    apply.apply(records([event("dv1", 1, T, "click"), event("dv2", 1, T, "impression")]))
    assert sqlite_store.read_view(USER_COUNTERS, ["dv1"])[0][1] is None  # not yet: coalesced
    apply.apply(records([event("dv1", 2, T + 1, "view")], first=2))
    assert apply.flush_derived() == 1  # one write for dv1's two batches; dv2 had only an impression
    assert sqlite_store.read_view(USER_COUNTERS, ["dv1"])[0][1]["rt_events_1h"] == 2
    # A crash after the rows were written, before the derived flush: the redelivery marks the user again.
    apply.apply(records([event("dv3", 1, T, "booking")]))
    apply.reset()
    again = apply.apply(records([event("dv3", 1, T, "booking")]))
    assert again.duplicates == 1 and apply.flush_derived() == 1
    assert sqlite_store.read_view(USER_COUNTERS, ["dv3"])[0][1]["rt_booking_1h"] == 1


@pytest.mark.parametrize("cache_users", [0, 1])
def test_in_memory_copy_is_bounded_and_optional(sqlite_store, cache_users):
    apply = applier(sqlite_store, cache_users=cache_users)
    apply.apply(records([event(f"c{cache_users}{u}", 1, T) for u in range(3)]))
    assert len(apply.rows) == cache_users
    assert apply.apply(records([event(f"c{cache_users}{u}", 1, T) for u in range(3)])).duplicates == 3
