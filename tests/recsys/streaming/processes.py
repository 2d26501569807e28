"""Test and benchmark helpers: the stream consumer as a child process (`python -m recsys.streaming.consumer`,
exactly as operators run it), its config file, and what the group has committed.

Only processes started here are ever signalled (their own process group)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from recsys.streaming.config import PROJECT_ROOT


def write_config(path: Path, bootstrap: str, topic: str, repo: Path, archive_root: Path | None, group: str = "test",
                 fs_yaml: str = "feature_store.yaml", **sections) -> Path:
    """A configs/stream.yaml-shaped file for one test; `sections` update its sections."""
    config = {"kafka": {"bootstrap_servers": bootstrap}, "topic": topic,
              "consumer": {"group_id": group, "session_timeout_ms": 6000, "heartbeat_interval_ms": 1000,
                           "max_poll_interval_ms": 10000,  # also the rebalance timeout: a killed member is
                           # waited for this long (the dev broker does not end it at its session timeout)
                           "retry_seconds": 0.5},
              "state": {"repo_path": str(repo), "fs_yaml": fs_yaml, "max_events": 200},
              "archive": {"root": str(archive_root) if archive_root else None, "roll_seconds": 1.0},
              "model": {"model": None}, "metrics": {"port": 0}}
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(config))
    return path


STARTED: list = []  # every ConsumerProcess started here, for `kill_leftovers`


def kill_leftovers() -> None:
    """SIGKILL the consumers started here that are still running (a test that failed before stopping them)."""
    while STARTED:
        STARTED.pop().kill()


class ConsumerProcess:
    def __init__(self, config: Path, log: Path, env: dict | None = None):
        self.config, self.log = config, log
        path = os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)
        self.env = {**os.environ, "PYTHONPATH": path, **(env or {})}
        self.process: subprocess.Popen | None = None

    def start(self) -> ConsumerProcess:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen([sys.executable, "-m", "recsys.streaming.consumer", "--config",
                                             str(self.config)], cwd=PROJECT_ROOT, env=self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        STARTED.append(self)
        return self

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, sig)

    def stop(self, timeout: float = 60.0) -> dict:
        """SIGTERM (graceful: finish, roll, commit) and the totals the consumer printed at exit."""
        self.signal(signal.SIGTERM)
        code = self.process.wait(timeout=timeout)
        assert code == 0, f"consumer exited with {code}: {self.tail()}"
        return self.totals()

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(timeout=30)

    def totals(self) -> dict:
        for line in reversed(self.log.read_text(errors="replace").splitlines()):
            if line.startswith('{"totals"'):
                return json.loads(line)["totals"]
        raise AssertionError(f"no totals line in the consumer's log: {self.tail()}")

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.is_file() else ""

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """{partition: committed offset} of the group (partitions without a commit left out). A consumer that
    does not subscribe only asks; it never joins the group."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], group_id=group, enable_auto_commit=False)
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        offsets = {tp.partition: consumer.committed(tp) for tp in partitions}
    finally:
        consumer.close(autocommit=False)
    return {p: o for p, o in offsets.items() if o is not None}


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=[bootstrap])
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items() if offset}
    finally:
        consumer.close()


def wait_until(condition, timeout: float, what: str, interval: float = 0.2, process: ConsumerProcess | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if process is not None and not process.alive():
            raise AssertionError(f"consumer died while waiting for {what}: {process.tail()}")
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f"; consumer log: {process.tail()}" if process else ""))


def caught_up(bootstrap: str, group: str, topic: str) -> bool:
    end = end_offsets(bootstrap, topic)
    return bool(end) and committed(bootstrap, group, topic) == end
