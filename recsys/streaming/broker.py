"""The embedded dev broker: a Kafka-protocol broker on loopback, for a laptop, the tests and the benchmark.

Where this sits: production points the producer and the consumer at a real Kafka cluster (configs/stream.yaml,
KAFKA_BOOTSTRAP_SERVERS); without one, this starts the `noida-db` binary (the `noida-db` wheel, pinned in
requirements-dev.txt) with only its Kafka service, on a port, with its data in a directory, and waits until a
client can connect. Data survives a stop/start on the same directory (the fault tests restart it mid-stream).

    python -m recsys.streaming.broker --port 9092 --data-dir data/kafka      # foreground; Ctrl-C stops it

Only the process this object started is ever signalled (its own process group).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def binary() -> Path:
    """The noida-db executable shipped in its wheel."""
    try:
        import noida_db
    except ImportError:
        raise RuntimeError("the dev broker needs the noida-db wheel: pip install -r requirements-dev.txt") from None
    path = Path(noida_db.__file__).parent / "noida-db"
    if not path.is_file():
        raise RuntimeError(f"noida-db binary not found at {path}")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DevBroker:
    """`noida-db start --only kafka` as a child process; `bootstrap` is host:port once `start()` returns.

    A context manager: `with DevBroker(data_dir) as broker: ...` starts it and stops it (SIGTERM, then
    SIGKILL after `stop_timeout`). `stop()` then `start()` restarts it on the same port and data."""

    def __init__(self, data_dir: str | Path, port: int | None = None, host: str = "127.0.0.1",
                 log_path: str | Path | None = None):
        self.data_dir, self.host = Path(data_dir), host
        self.port = port or free_port()
        self.log_path = Path(log_path) if log_path else self.data_dir.parent / f"{self.data_dir.name}.log"
        self.process: subprocess.Popen | None = None

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout: float = 30.0) -> DevBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(binary()), "start", "--data-dir", str(self.data_dir), "--host", self.host, "--only", "kafka",
             "--kafka-port", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop(kill=True)
                raise RuntimeError(f"Kafka dev broker did not start on {self.bootstrap}: {self.tail()}")
            time.sleep(0.2)
        return self

    def ready(self) -> bool:
        """True when a Kafka client gets the cluster's metadata (the port alone opens before that)."""
        from kafka import KafkaAdminClient

        try:
            KafkaAdminClient(bootstrap_servers=[self.bootstrap], request_timeout_ms=2000).close()
            return True
        except Exception:  # noqa: BLE001 - any failure means "not yet"
            return False

    def stop(self, kill: bool = False, stop_timeout: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=stop_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=stop_timeout)

    def tail(self, n: int = 2000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.is_file() else ""

    def __enter__(self) -> DevBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def create_topics(bootstrap: str, topics: dict[str, int], **client) -> None:
    """Create each topic with its partition count (replication 1: one dev broker) unless it exists."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    admin = KafkaAdminClient(bootstrap_servers=bootstrap.split(","), **client)
    try:
        existing = set(admin.list_topics())
        new = [NewTopic(name, partitions, 1) for name, partitions in topics.items() if name not in existing]
        if new:
            try:
                admin.create_topics(new)
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Run the embedded Kafka-protocol dev broker (noida-db).")
    parser.add_argument("--port", type=int, default=9092)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", type=Path, default=Path("data/kafka"))
    parser.add_argument("--topic", action="append", default=[], metavar="NAME[:PARTITIONS]",
                        help="create this topic (and NAME.dlq) when missing; repeatable")
    args = parser.parse_args(argv)
    broker = DevBroker(args.data_dir, args.port, args.host).start()
    topics = {}
    for spec in args.topic:
        name, _, partitions = spec.partition(":")
        topics[name] = topics[f"{name}.dlq"] = int(partitions or 1)
    if topics:
        create_topics(broker.bootstrap, topics)
    print(f"Kafka dev broker on {broker.bootstrap} (data {args.data_dir.resolve()}, log {broker.log_path}); "
          f"KAFKA_BOOTSTRAP_SERVERS={broker.bootstrap}; Ctrl-C stops it", flush=True)
    stop = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(1))
    while not stop and broker.process.poll() is None:
        time.sleep(0.5)
    broker.stop()
    return 0 if stop else 1


if __name__ == "__main__":
    sys.exit(main())
