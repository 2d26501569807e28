"""The event producer: contract events onto the topic, keyed by user, acknowledged by every in-sync replica.

Where this sits: the service's /feedback (bentos/feedback.py `KafkaSink`) and the replayer
(recsys.streaming.replay) produce through it; the consumer (recsys.streaming.consumer) reads the topic.
Keyed by `user_id`, so one user's events stay in order on one partition and one consumer owns each user's
row. `acks="all"`: a `send(...)` that returned has been stored by the broker(s), so an event the service
acknowledged is never lost. Connection settings (bootstrap servers, SASL/SSL) come from
recsys.streaming.config (configs/stream.yaml and the environment).
"""

from __future__ import annotations

import threading

from recsys.streaming.events import Event, encode


class EventProducer:
    """kafka-python `KafkaProducer`, created on first use (no network at construction).

    `send(event)` waits for the acknowledgement; `send_many(events)` pipelines them and waits once (the
    replayer); `close()` flushes. Thread-safe (kafka-python's producer is)."""

    def __init__(self, topic: str, client: dict | None = None, timeout: float = 10.0, **producer):
        self.topic, self.timeout = topic, timeout
        self._client = dict(client or {"bootstrap_servers": ["127.0.0.1:9092"]})
        self._producer_options = producer
        self._producer = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config, **producer) -> EventProducer:
        """From a recsys.streaming.config.StreamConfig: its topic and Kafka connection."""
        return cls(config.topic, config.kafka.client_config(), **producer)

    @property
    def producer(self):
        with self._lock:
            if self._producer is None:
                from kafka import KafkaProducer

                options = {"acks": "all", "retries": 5, "linger_ms": 5, **self._producer_options}
                self._producer = KafkaProducer(**self._client, **options)
            return self._producer

    def send(self, event: dict | Event, timeout: float | None = None) -> tuple[int, int]:
        """Produce one event and wait until the broker stored it; (partition, offset)."""
        metadata = self._send(event).get(timeout=self.timeout if timeout is None else timeout)
        return metadata.partition, metadata.offset

    def send_many(self, events, timeout: float | None = None) -> int:
        """Produce many, wait for all acknowledgements (an error raises); how many were sent."""
        futures = [self._send(e) for e in events]
        self.producer.flush(timeout=self.timeout if timeout is None else timeout)
        for future in futures:
            future.get(timeout=0)
        return len(futures)

    def send_raw(self, value: bytes, key: str | None = None):
        """A message as given (the fault tests' poison messages); returns the future."""
        return self.producer.send(self.topic, key=key.encode() if key is not None else None, value=value)

    def _send(self, event: dict | Event):
        user = event.user_id if isinstance(event, Event) else event["user_id"]
        return self.producer.send(self.topic, key=str(user).encode(), value=encode(event))

    def flush(self, timeout: float | None = None) -> None:
        if self._producer is not None:
            self._producer.flush(timeout=self.timeout if timeout is None else timeout)

    def close(self, timeout: float = 5.0) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.close(timeout=timeout)
                self._producer = None
