"""Fault tests with the real broker process (noida-db, recsys.streaming.broker) and the consumer as a child
process (`python -m recsys.streaming.consumer`). Each compares the state after the fault with the produced
events exactly: every user's row in the online store and its counters, and every row of every archive file
(read without the reader's dedup), against the set of produced event ids: nothing lost, nothing applied
twice. Topics have several partitions."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections import defaultdict

import pyarrow.parquet as pq
import pytest
import requests

from recsys.features.definitions import USER_COUNTERS
from recsys.features.store import apply_repo
from recsys.streaming.broker import DevBroker, create_topics, free_port
from recsys.streaming.effects import counters
from recsys.streaming.events import make_event, parse
from recsys.streaming.producer import EventProducer
from recsys.streaming.state import OnlineEventStore, UserEvents
from tests.feature_repo.repo import RedisServer
from tests.recsys.streaming.processes import (ConsumerProcess, caught_up, committed, kill_leftovers,
                                              wait_until, write_config)

pytestmark = pytest.mark.slow
PARTITIONS = 4
KINDS = ("view", "view", "click", "booking")
T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z


@pytest.fixture(autouse=True)
def no_leftover_consumers():
    yield
    kill_leftovers()


@pytest.fixture
def broker(tmp_path):
    with DevBroker(tmp_path / "kafka") as running:
        yield running


@pytest.fixture(scope="module")
def sqlite_repo(repo):
    apply_repo(repo, "feature_store.yaml")
    return repo


def setup(tmp_path, broker, repo, topic="events", **sections):
    create_topics(broker.bootstrap, {topic: PARTITIONS, f"{topic}.dlq": 1})
    archive = tmp_path / "archive"
    config = write_config(tmp_path / f"stream-{time.monotonic_ns()}.yaml", broker.bootstrap, topic, repo, archive,
                          group=f"g-{tmp_path.name}", **sections)
    return config, archive, EventProducer(topic, {"bootstrap_servers": [broker.bootstrap]})


def events(prefix: str, n: int, users: int = 40, start: int = 0) -> list[dict]:
    """n events over `users` users (fewer than a row's max_events each, so every event stays in a row)."""
    return [make_event(f"{prefix}{i % users}", f"h{i % 23}", KINDS[i % 4], event_id=f"{prefix}-{i}")
            | {"timestamp": T0 + 60 * i} for i in range(start, start + n)]


def assert_exact(repo, archive, produced: list[dict], fs_yaml: str = "feature_store.yaml") -> None:
    """The store's rows and counters and the archive's rows are exactly those of `produced`."""
    store = OnlineEventStore(repo, fs_yaml)
    by_user = defaultdict(list)
    for e in produced:
        by_user[e["user_id"]].append(parse(e))
    users = sorted(by_user)
    want = [UserEvents().merge(by_user[u])[0] for u in users]
    got = store.read(users)
    assert got == want, "online rows differ from the produced events"
    names = [f.name for f in store._view(USER_COUNTERS).features]
    assert [v for _, v in store.read_view(USER_COUNTERS, users)] == [counters(w, names) for w in want]
    files = sorted(archive.glob("date=*/*.parquet"))
    ids = [i for f in files for i in pq.read_table(f, columns=["event_id"]).column(0).to_pylist()]
    assert len(ids) == len(produced) and set(ids) == {e["event_id"] for e in produced}, \
        f"archive holds {len(ids)} rows for {len(produced)} events ({len(set(ids))} distinct)"


def stored_events(repo, users, fs_yaml="feature_store.yaml") -> int:
    return sum(len(r) for r in OnlineEventStore(repo, fs_yaml).read(users))


def test_consumer_killed_after_effects_before_commit_is_redelivered_and_applied_once(tmp_path, broker, sqlite_repo):
    group = f"g-{tmp_path.name}"
    # One static member id for the three consumers: a restart takes the killed one's place at once (the dev
    # broker never expires a killed member; Kafka would after session_timeout_ms).
    member = {"group_instance_id": "consumer-1"}
    config, archive, producer = setup(tmp_path, broker, sqlite_repo, consumer=member)
    slow_roll = write_config(tmp_path / "slow-roll.yaml", broker.bootstrap, "events", sqlite_repo, archive,
                             group=group, consumer=member, archive={"roll_seconds": 3600.0})
    sent = events("k", 2000)
    producer.send_many(sent)
    # 1. Killed with every online effect applied and nothing committed (its roll is an hour away).
    first = ConsumerProcess(slow_roll, tmp_path / "first.log").start()
    users = sorted({e["user_id"] for e in sent})
    wait_until(lambda: stored_events(sqlite_repo, users) == len(sent), 90, "the effects", process=first)
    first.kill()
    assert committed(broker.bootstrap, group, "events") == {} and not list(archive.glob("date=*/*.parquet"))

    # 2. Killed after a roll wrote its archive files and dead letters, just before its commit.
    more = events("k", 500, start=2000)
    producer.send_many(more[:250])
    producer.send_raw(b"poison", key="k1").get(timeout=10)
    producer.send_many(more[250:])
    producer.close()
    second = ConsumerProcess(config, tmp_path / "second.log", env={"RECSYS_STREAM_FAULT": "before-commit:1"}).start()
    second.process.wait(timeout=90)
    assert second.process.returncode == -signal.SIGKILL, second.tail()
    applied_before = stored_events(sqlite_repo, users)  # what the two killed consumers applied
    assert applied_before > len(sent)
    written = sorted(archive.glob("date=*/*.parquet"))
    assert written and committed(broker.bootstrap, group, "events") == {}

    # 3. A healthy restart: everything is redelivered, nothing is applied twice, the archive is rewritten.
    third = ConsumerProcess(config, tmp_path / "third.log").start()
    wait_until(lambda: caught_up(broker.bootstrap, group, "events"), 90, "the commit", process=third)
    totals = third.stop()
    total = len(sent) + len(more)
    assert (totals["applied"], totals["duplicates"], totals["invalid"]) == \
        (total - applied_before, applied_before, 1)  # redelivered, and each event applied once
    assert "archive file(s) of an uncommitted roll" in third.tail(100_000)
    assert_exact(sqlite_repo, archive, sent + more)


def test_poison_messages_go_to_the_dlq_and_the_partition_goes_on(tmp_path, broker, sqlite_repo):
    port = free_port()
    config, archive, producer = setup(tmp_path, broker, sqlite_repo, metrics={"port": port, "host": "127.0.0.1"})
    good = events("p", 400)
    poison = [(b"{not json", "p1", ""), (b"\xff\xfe", "p2", ""),
              (json.dumps({**good[0], "event_id": "bad-1", "event_type": "teleport"}).encode(), "p3", "event_type"),
              (json.dumps({k: v for k, v in good[1].items() if k != "event_id"}).encode(), "p4", "event_id")]
    where = {}
    for i, (value, key, field) in enumerate(poison):  # each poison message sits between good ones
        producer.send_many(good[100 * i:100 * i + 50])
        meta = producer.send_raw(value, key=key).get(timeout=10)
        where[(meta.partition, meta.offset)] = (value, field)
        producer.send_many(good[100 * i + 50:100 * i + 100])
    producer.close()
    consumer = ConsumerProcess(config, tmp_path / "consumer.log").start()
    wait_until(lambda: caught_up(broker.bootstrap, f"g-{tmp_path.name}", "events"), 90, "the commit",
               process=consumer)
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text  # what Prometheus scrapes
    totals = consumer.stop()
    assert (totals["applied"], totals["invalid"]) == (len(good), len(poison))
    assert f'recsys_stream_events_total{{outcome="invalid"}} {len(poison)}.0' in metrics
    assert f'recsys_stream_events_total{{outcome="applied"}} {len(good)}.0' in metrics
    assert 'recsys_stream_dead_letters_total{field="event_type"} 1.0' in metrics
    assert 'recsys_stream_consumer_lag{partition="0"} 0.0' in metrics

    from kafka import KafkaConsumer

    dlq = KafkaConsumer("events.dlq", bootstrap_servers=[broker.bootstrap], auto_offset_reset="earliest",
                        consumer_timeout_ms=5000, group_id=None)
    letters = [json.loads(m.value) for m in dlq]
    dlq.close()
    assert {(d["partition"], d["offset"]) for d in letters} == set(where)
    for letter in letters:
        value, field = where[(letter["partition"], letter["offset"])]
        assert letter["error"] and letter["field"] == field and letter["topic"] == "events"
        assert letter.get("value", "").encode() == value or letter.get("value_base64")
    assert_exact(sqlite_repo, archive, good)


def test_broker_stopped_and_restarted_mid_stream_loses_nothing(tmp_path, broker, sqlite_repo):
    config, archive, producer = setup(tmp_path, broker, sqlite_repo)
    first, second = events("b", 1200), events("b", 1200, start=1200)
    producer.send_many(first)
    producer.close()
    consumer = ConsumerProcess(config, tmp_path / "consumer.log").start()
    users = sorted({e["user_id"] for e in first})
    wait_until(lambda: stored_events(sqlite_repo, users) >= 600, 90, "the first events", process=consumer)
    broker.stop()  # mid-stream: the consumer polls, writes and commits against a missing broker
    time.sleep(4)
    assert consumer.alive()
    broker.start()
    producer = EventProducer("events", {"bootstrap_servers": [broker.bootstrap]})
    producer.send_many(second)
    producer.close()
    wait_until(lambda: caught_up(broker.bootstrap, f"g-{tmp_path.name}", "events"), 120, "the commit",
               process=consumer)
    consumer.stop()
    assert_exact(sqlite_repo, archive, first + second)


def test_two_consumers_rebalancing_mid_stream_apply_everything_once(tmp_path, broker, repo):
    with RedisServer() as redis:
        os.environ["RECSYS_REDIS"] = redis.connection_string
        try:
            apply_repo(repo, "feature_store_redis.yaml")
            config, archive, producer = setup(tmp_path, broker, repo, state={"fs_yaml": "feature_store_redis.yaml"})
            group, sent, finish = f"g-{tmp_path.name}", [], threading.Event()

            def produce():  # a steady ~500 events/s while consumers join and leave
                while not finish.is_set():
                    chunk = events("r", 100, users=500, start=len(sent))
                    producer.send_many(chunk)
                    sent.extend(chunk)
                    time.sleep(0.2)

            def assigned(process, partitions):
                return f"partitions assigned: {partitions}" in process.tail(100_000)

            a = ConsumerProcess(config, tmp_path / "a.log").start()
            wait_until(lambda: assigned(a, "[0, 1, 2, 3]"), 90, "a's assignment", process=a)
            thread = threading.Thread(target=produce)
            thread.start()
            try:
                wait_until(lambda: committed(broker.bootstrap, group, "events"), 60, "a's first commit", process=a)
                b = ConsumerProcess(config, tmp_path / "b.log").start()  # joins: half the partitions move to b
                wait_until(lambda: assigned(b, "[2, 3]") or assigned(b, "[0, 1]"), 90, "the rebalance", process=b)
                time.sleep(2.0)
                totals_a = a.stop()  # leaves mid-stream: a rebalance gives b every partition
                wait_until(lambda: assigned(b, "[0, 1, 2, 3]"), 60, "the second rebalance", process=b)
                time.sleep(2.0)
            finally:
                finish.set()
                thread.join(timeout=60)
                producer.close()
            wait_until(lambda: caught_up(broker.bootstrap, group, "events"), 90, "b's commit", process=b)
            totals_b = b.stop()
            assert totals_a["applied"] > 0 and totals_b["applied"] > 0, (totals_a, totals_b)
            assert totals_a["applied"] + totals_b["applied"] == len(sent)  # each event applied exactly once
            assert_exact(repo, archive, sent, "feature_store_redis.yaml")
        finally:
            os.environ.pop("RECSYS_REDIS", None)
