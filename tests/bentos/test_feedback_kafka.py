"""/feedback with KAFKA_BOOTSTRAP_SERVERS set: events are produced to a real Kafka-protocol broker (the
noida-db binary, started by recsys.streaming.broker on a free loopback port) in the ARCHITECTURE event
contract (recsys.streaming.events), keyed by user, and consumed back with kafka-python."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
import requests

from recsys.streaming.broker import DevBroker
from recsys.streaming.events import parse
from tests.bentos.conftest import server_env

pytestmark = pytest.mark.slow
TOPIC = "recsys.events.test"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    with DevBroker(tmp_path_factory.mktemp("kafka") / "db") as running:
        yield running.bootstrap


@pytest.fixture(scope="module")
def server(bundles, broker, start_server, tmp_path_factory):
    env = server_env(tmp_path_factory.mktemp("kafka-serve"), str(bundles["v1"]),
                     KAFKA_BOOTSTRAP_SERVERS=broker, RECSYS_FEEDBACK_TOPIC=TOPIC)
    return start_server(env)


def consume(broker, n, timeout_ms=15000):
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(TOPIC, bootstrap_servers=[broker], auto_offset_reset="earliest",
                             group_id=f"test-{time.time()}", consumer_timeout_ms=timeout_ms)
    out = []
    for message in consumer:
        out.append((message.key.decode(), json.loads(message.value)))
        if len(out) >= n:
            break
    consumer.close()
    return out


def test_feedback_is_produced_to_kafka_in_the_event_contract(server, broker, bundles):
    item = bundles["items"].item_id.iloc[3]
    sent = [
        {"user_id": "cold-kafka", "item_id": item, "event_type": "booking", "event_id": "evt-1",
         "timestamp": "2026-01-02T03:04:05+01:00"},
        {"user_id": "cold-kafka", "item_id": "item-not-in-catalogue", "event_type": "view"},
    ]
    answers = []
    for event in sent:
        r = requests.post(server.url + "/feedback", json=event, timeout=15)
        assert r.status_code == 200, r.text
        assert r.json()["sink"] == "kafka" and r.json()["applied"] is None
        answers.append(r.json())
    assert answers[0]["event_id"] == "evt-1" and answers[1]["event_id"]

    got = consume(broker, 2)
    assert [key for key, _ in got] == ["cold-kafka", "cold-kafka"]  # keyed by user: ordered per user
    first, second = (value for _, value in got)
    assert {"event_id", "user_id", "item_id", "event_type", "timestamp"} <= set(first)
    assert first["event_id"] == "evt-1" and first["item_id"] == item and first["event_type"] == "booking"
    assert datetime.fromisoformat(first["timestamp"]).isoformat() == "2026-01-02T02:04:05+00:00"  # UTC
    assert first["variant"] == "control" and first["model_version"] == "v1"
    assert second["event_id"] == answers[1]["event_id"] and second["item_id"] == "item-not-in-catalogue"
    assert datetime.fromisoformat(second["timestamp"]).tzinfo is not None

    assert parse(json.dumps(first)).event_id == "evt-1" and parse(json.dumps(second)).user_id == "cold-kafka"
