"""The replayer (recsys.streaming.replay) and the dev broker's command: the synthetic days after the training
window, contract events with fresh or stable ids, a rate kept, everything acknowledged by the real broker."""

import subprocess
import sys
import time

import pandas as pd
import pytest
import yaml

from recsys.streaming.broker import free_port
from recsys.streaming.events import parse
from recsys.streaming.producer import EventProducer
from recsys.streaming.replay import events_of, replay, synthetic_after_window
from tests.recsys.streaming.processes import end_offsets

TRAIN = {"parameters": {"source": "synthetic", "source_params": {"n_users": 50, "n_items": 20, "n_events": 1800,
                                                                  "seed": 4, "start": "2025-01-01", "days": 60}}}


def test_synthetic_after_window_continues_the_training_data(tmp_path):
    from recsys.data.synthetic import generate_travel_data

    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(TRAIN))
    after = synthetic_after_window(path, days=10)
    trained = generate_travel_data(**TRAIN["parameters"]["source_params"]).interactions
    assert after.timestamp.min() >= pd.Timestamp("2025-03-02", tz="UTC") > trained.timestamp.max()
    assert after.timestamp.max() < pd.Timestamp("2025-03-12", tz="UTC") and len(after) > 100
    assert set(after.user_id) <= set(f"u{i:05d}" for i in range(50)) and after.timestamp.is_monotonic_increasing


def test_events_are_contract_events_with_fresh_or_stable_ids():
    frame = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": ["h1", "h2"], "event_type": ["view", "booking"],
                          "timestamp": pd.to_datetime(["2025-01-01T00:00:00Z", "2025-01-01T00:00:01Z"]),
                          "value": [1.0, 99.5], "session_id": ["s1", None]})
    first, second = list(events_of(frame)), list(events_of(frame))
    assert [parse(e).event_type for e in first] == ["view", "booking"] and parse(first[1]).value == 99.5
    assert parse(first[0]).seconds == pd.Timestamp("2025-01-01", tz="UTC").timestamp()
    assert {e["event_id"] for e in first}.isdisjoint(e["event_id"] for e in second)  # a new run is new traffic
    assert [e["event_id"] for e in events_of(frame, stable_ids="x")] == ["x-0", "x-1"]
    now = list(events_of(frame, timestamps="now"))
    assert abs(parse(now[0]).seconds - time.time()) < 5


@pytest.mark.slow
def test_replay_keeps_its_rate_on_the_dev_broker_started_by_its_command(tmp_path):
    port = free_port()
    command = subprocess.Popen([sys.executable, "-m", "recsys.streaming.broker", "--port", str(port), "--data-dir",
                                str(tmp_path / "kafka"), "--topic", "ev:3"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        line = command.stdout.readline()
        assert f"127.0.0.1:{port}" in line, line
        bootstrap = f"127.0.0.1:{port}"
        from kafka import KafkaConsumer

        client = KafkaConsumer(bootstrap_servers=[bootstrap])
        assert client.partitions_for_topic("ev") == client.partitions_for_topic("ev.dlq") == {0, 1, 2}
        client.close()  # the command made the topic and its dead-letter topic
        frame = pd.DataFrame({"user_id": [f"u{i % 7}" for i in range(300)], "item_id": "h1", "event_type": "view",
                              "timestamp": pd.Timestamp("2025-01-01", tz="UTC")})
        producer = EventProducer("ev", {"bootstrap_servers": [bootstrap]})
        result = replay(events_of(frame), producer, rate=200, report=None)
        producer.close()
        assert result["events"] == 300 and 1.3 < result["seconds"] < 4.0  # 300 events at 200/s: ~1.5 s
        assert sum(end_offsets(bootstrap, "ev").values()) == 300
    finally:
        command.terminate()
        assert command.wait(timeout=30) == 0
