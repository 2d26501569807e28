"""One online state for every worker and replica, over real HTTP (`bentoml serve`, 2 workers).

Direct mode (no Kafka): an event accepted by /feedback changes the user's next /recommend on whichever
worker answers (the workers share the event log), and a service killed with SIGKILL and restarted still
applies every event it acknowledged. Kafka mode (the dev broker, recsys.streaming.broker; the stream
consumer, `python -m recsys.streaming.consumer`, writing the users' rows to a real Feast sqlite online
store): an event sent to /feedback, and one produced directly to the topic, change the user's next
/recommend within a second on both workers, and an unknown user gets personal items after a few clicks.

Which worker answered: each server runs an A/B experiment whose two variants serve the same bundle, so each
worker writes its own experiment log (experiments-<pid>.jsonl) with the request id of every answer.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from bentos.settings import PROJECT_ROOT
from tests.bentos.conftest import server_env

pytestmark = pytest.mark.slow
TOPIC = "recsys.events.e2e"
FRESH_SECONDS = 1.0  # an event must show in every worker's answers within this


def two_workers(tmp: Path, bundle: Path, **extra) -> dict:
    return server_env(tmp, str(bundle), RECSYS_WORKERS="2", RECSYS_WARM_UP="false", RECSYS_EXPERIMENT="workers",
                      RECSYS_TREATMENT_MODEL=str(bundle), RECSYS_TREATMENT_SHARE="0.5", **extra)


def all_workers_ready(server, timeout: float = 120.0):
    """A server is ready once one worker answers /readyz; the other may still be loading its bundle. Ready
    here: 20 answers in a row on new connections."""
    deadline, streak = time.monotonic() + timeout, 0
    while streak < 20:
        assert time.monotonic() < deadline, "not every worker became ready"
        streak = streak + 1 if server.status("/readyz") == 200 else 0
        time.sleep(0.05 if streak else 0.5)
    return server


def recommend(server, user: str, k: int = 10) -> dict:
    """One /recommend on a new connection (connections are spread over the workers, not the requests)."""
    r = requests.post(server.url + "/recommend", json={"user_id": user, "k": k}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def items(answer: dict) -> list[str]:
    return [i["item_id"] for i in answer["items"]]


def workers_of(tmp: Path, request_ids: set[str]) -> set[str]:
    """The experiment log files (one per worker process) holding these answers."""
    found = set()
    for path in glob.glob(str(tmp / "logs" / "experiments-*.jsonl")):
        for line in open(path):
            if json.loads(line).get("request_id") in request_ids:
                found.add(path)
    return found


def until_every_answer(server, user: str, check, seconds: float = FRESH_SECONDS, n: int = 8) -> list[dict]:
    """Poll until `n` answers in a row satisfy `check`; fails after `seconds`. Returns the last round."""
    deadline = time.monotonic() + seconds
    while True:
        answers = [recommend(server, user) for _ in range(n)]
        if all(check(a) for a in answers):
            return answers
        assert time.monotonic() < deadline, f"{user}: not every worker reflects the event after {seconds}s"
        time.sleep(0.02)


# ---- direct mode ----
@pytest.fixture(scope="module")
def direct(bundles, start_server, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("direct")
    env = two_workers(tmp, bundles["v1"])
    return tmp, env, all_workers_ready(start_server(env))


def test_without_kafka_both_workers_answer_with_the_event(direct, bundles):
    tmp, _, server = direct
    users = list(bundles["known"].user_id.drop_duplicates()[60:66])
    seen_ids = set()
    for user in users:
        top = items(recommend(server, user))[0]
        r = requests.post(server.url + "/feedback", json={"user_id": user, "item_id": top, "event_type": "booking"})
        assert r.status_code == 200 and r.json()["sink"] == "direct" and r.json()["applied"] is True
        answers = until_every_answer(server, user, lambda a: top not in items(a))
        seen_ids |= {a["request_id"] for a in answers}
    assert len(workers_of(tmp, seen_ids)) == 2  # both workers answered, and both had the event


def test_a_killed_service_restarted_applies_every_acknowledged_event(direct, bundles, start_server):
    tmp, env, server = direct
    users = list(bundles["known"].user_id.drop_duplicates()[100:140])
    top = {user: items(recommend(server, user))[0] for user in users}  # each user's first item, before any event
    acked, stop = [], threading.Event()

    def client():  # feedback as fast as the server takes it, until the server dies under it
        for user in users:
            if stop.is_set():
                return
            body = {"user_id": user, "item_id": top[user], "event_type": "booking", "event_id": f"kill-{user}"}
            try:
                r = requests.post(server.url + "/feedback", json=body, timeout=5)
            except requests.RequestException:
                return
            if r.status_code == 200:
                acked.append((r.json()["event_id"], user))

    thread = threading.Thread(target=client)
    thread.start()
    deadline = time.monotonic() + 60
    while len(acked) < 15 and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.005)
    processes = server.tree()
    assert len(processes) >= 3, "the arbiter and two workers"
    server.kill()  # SIGKILL to the arbiter and both workers at once, mid-stream
    assert not [p.pid for p in processes if p.is_running() and p.status() != "zombie"]
    stop.set()
    thread.join(timeout=30)
    assert 15 <= len(acked) < len(users), "the kill should land while events are still being sent"

    logged = {json.loads(line)["event_id"] for line in open(env["RECSYS_EVENT_LOG"])}
    assert {event_id for event_id, _ in acked} <= logged  # on disk before acknowledged
    restarted = all_workers_ready(start_server(env))
    answered = set()
    for event_id, user in acked:  # without the event the user's first item would be `top` again
        for _ in range(4):
            answer = recommend(restarted, user)
            assert top[user] not in items(answer), (event_id, user)
            answered.add(answer["request_id"])
    assert len(workers_of(tmp, answered)) == 2


# ---- Kafka mode ----
@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    from recsys.streaming.broker import DevBroker

    with DevBroker(tmp_path_factory.mktemp("kafka") / "db") as running:
        yield running.bootstrap


@pytest.fixture(scope="module")
def kafka_service(bundles, broker, feast_repo, start_server, tmp_path_factory):
    """The service (2 workers) and the stream consumer, both on the broker and the Feast repo's online store."""
    tmp = tmp_path_factory.mktemp("kafka-serve")
    stream = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": broker, "RECSYS_FEEDBACK_TOPIC": TOPIC,
              "RECSYS_FEATURE_REPO": str(feast_repo), "RECSYS_FEATURE_STORE_YAML": "feature_store.yaml",
              "RECSYS_EVENT_ARCHIVE": str(tmp / "archive"), "RECSYS_STREAM_MODEL": "", "RECSYS_STREAM_GROUP": "e2e",
              "RECSYS_STREAM_METRICS_PORT": "0", "PYTHONPATH": str(PROJECT_ROOT)}
    with (tmp / "consumer.log").open("wb") as log:
        consumer = subprocess.Popen([sys.executable, "-m", "recsys.streaming.consumer", "--create-topics"],
                                    cwd=PROJECT_ROOT, env=stream, stdout=log, stderr=subprocess.STDOUT)
    env = two_workers(tmp, bundles["v1"], KAFKA_BOOTSTRAP_SERVERS=broker, RECSYS_FEEDBACK_TOPIC=TOPIC,
                      RECSYS_FEATURE_REPO=str(feast_repo), RECSYS_FEATURE_STORE_YAML="feature_store.yaml")
    try:
        yield tmp, all_workers_ready(start_server(env))
        assert consumer.poll() is None, (tmp / "consumer.log").read_text()[-3000:]
    finally:
        consumer.send_signal(signal.SIGTERM)  # graceful: finishes the batch, commits, exits
        consumer.wait(timeout=30)


def test_with_kafka_an_event_reaches_every_worker_within_a_second(kafka_service, broker, bundles):
    from kafka import KafkaProducer

    from recsys.streaming.events import encode, make_event

    tmp, server = kafka_service
    users = list(bundles["known"].user_id.drop_duplicates()[200:204])
    request_ids = set()
    # Through the service's /feedback (produced to the topic; the worker that took it applies it at once).
    user = users[0]
    top = items(recommend(server, user))[0]
    r = requests.post(server.url + "/feedback", json={"user_id": user, "item_id": top, "event_type": "booking"})
    assert r.status_code == 200 and r.json()["sink"] == "kafka"
    request_ids |= {a["request_id"] for a in until_every_answer(server, user, lambda a: top not in items(a))}
    # Produced straight to the topic by another client: only the rows bring it to the service.
    producer = KafkaProducer(bootstrap_servers=[broker], acks="all")
    for user in users[1:]:
        top = items(recommend(server, user))[0]
        producer.send(TOPIC, key=user.encode(), value=encode(make_event(user, top, "booking"))).get(timeout=10)
        request_ids |= {a["request_id"] for a in until_every_answer(server, user, lambda a, t=top: t not in items(a))}
    # An unknown user: cold start, then personal items after a few clicks.
    newcomer = "kafka-newcomer"
    assert {i["stage"] for i in recommend(server, newcomer)["items"]} == {"cold_start"}
    clicked = list(bundles["items"].item_id.iloc[[3, 4, 5]])
    for item in clicked:
        producer.send(TOPIC, key=newcomer.encode(), value=encode(make_event(newcomer, item, "click"))).get(timeout=10)
    producer.close()
    answers = until_every_answer(server, newcomer, lambda a: any(i["stage"] == "ranked" for i in a["items"])
                                 and not set(clicked) & set(items(a)))
    request_ids |= {a["request_id"] for a in answers}
    assert len(workers_of(tmp, request_ids)) == 2
