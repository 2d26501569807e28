"""Feedback events from the service: to Kafka when configured, otherwise applied in place.

An event follows the ARCHITECTURE contract for Kafka (JSON with `event_id` as the idempotency key,
`user_id`, `item_id`, `event_type`, ISO-8601 UTC `timestamp`) plus the experiment, variant and model
version that served the user, so an experiment readout can compare variants from the feedback log.
With Kafka the streaming consumer updates the online state (at-least-once; `event_id` dedups); without it
the service applies the event to the Recommender it serves (`Recommender.record_feedback`), so the next
/recommend reflects it.
"""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

CONTRACT_FIELDS = ("event_id", "user_id", "item_id", "event_type", "timestamp")


def make_event(user_id: str, item_id: str, event_type: str, timestamp: datetime | None = None,
               event_id: str | None = None, **extra) -> dict:
    """A contract event; a missing `event_id` is a new UUID, a missing timestamp is now (UTC)."""
    ts = timestamp or datetime.now(timezone.utc)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    event = {"event_id": event_id or uuid.uuid4().hex, "user_id": str(user_id), "item_id": str(item_id),
             "event_type": event_type, "timestamp": ts.astimezone(timezone.utc).isoformat()}
    event.update({k: v for k, v in extra.items() if v is not None})
    return event


class KafkaSink:
    """kafka-python producer; `send` waits for the broker's acknowledgement so an accepted event is stored."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout: float = 10.0):
        self.bootstrap_servers, self.topic, self.timeout = bootstrap_servers, topic, timeout
        self._producer = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._producer is None:
                from kafka import KafkaProducer

                self._producer = KafkaProducer(
                    bootstrap_servers=self.bootstrap_servers.split(","), acks="all", retries=3,
                    key_serializer=str.encode, value_serializer=lambda v: json.dumps(v).encode())
            return self._producer

    def send(self, event: dict) -> None:
        # Keyed by user: one user's events stay in order on one partition.
        self._get().send(self.topic, key=event["user_id"], value=event).get(timeout=self.timeout)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close(timeout=5)
