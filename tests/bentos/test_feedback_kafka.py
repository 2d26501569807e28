"""/feedback with KAFKA_BOOTSTRAP_SERVERS set: events are produced to a real Kafka-protocol broker (the
noida-db binary, started here on a free loopback port) in the ARCHITECTURE event contract, and consumed
back with kafka-python. The in-process model is left to the streaming consumer: it does not change."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
import requests

from bentos.devserver import free_port
from tests.bentos.conftest import server_env

pytestmark = pytest.mark.slow
TOPIC = "recsys.events.test"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    import noida_db

    binary = Path(noida_db.__file__).parent / "noida-db"
    port, data = free_port(), tmp_path_factory.mktemp("kafka")
    log = (data / "broker.log").open("wb")
    process = subprocess.Popen([str(binary), "start", "--data-dir", str(data / "db"), "--host", "127.0.0.1",
                                "--only", "kafka", "--kafka-port", str(port)],
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    address = f"127.0.0.1:{port}"
    from kafka import KafkaProducer

    deadline = time.monotonic() + 30
    while True:  # ready when a producer can connect
        try:
            KafkaProducer(bootstrap_servers=[address], request_timeout_ms=2000).close()
            break
        except Exception:  # noqa: BLE001 - not up yet
            if time.monotonic() > deadline or process.poll() is not None:
                os.killpg(process.pid, signal.SIGKILL)
                raise RuntimeError(f"Kafka broker did not start: {(data / 'broker.log').read_text()[-2000:]}")
            time.sleep(0.3)
    yield address
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


@pytest.fixture(scope="module")
def server(bundles, broker, feast_repo, start_server, tmp_path_factory):
    env = server_env(tmp_path_factory.mktemp("kafka-serve"), str(bundles["v1"]), KAFKA_BOOTSTRAP_SERVERS=broker,
                     RECSYS_FEEDBACK_TOPIC=TOPIC, RECSYS_FEATURE_REPO=str(feast_repo))
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

    # Read-your-writes: the worker that took the booking applied it at once (the stream consumer's row brings
    # it to every other worker and replica: tests/bentos/test_online_state_http.py).
    r = requests.post(server.url + "/recommend", json={"user_id": "cold-kafka", "k": 3}, timeout=10)
    answer = r.json()["items"]
    assert any(i["stage"] == "ranked" for i in answer) and item not in [i["item_id"] for i in answer]
