"""Feedback events from the service: to Kafka when configured, otherwise applied in place.

An event follows the ARCHITECTURE contract for Kafka (recsys.streaming.events: versioned JSON with
`event_id` as the idempotency key, `user_id`, `item_id`, `event_type`, ISO-8601 UTC `timestamp`) plus the
experiment, variant and model version that served the user, so an experiment readout can compare variants
from the feedback log. With Kafka the stream consumer (recsys.streaming.consumer) updates the online state
(at-least-once; `event_id` dedups); without it the service applies the event itself.
"""

from __future__ import annotations

from recsys.streaming.config import kafka_from_env
from recsys.streaming.events import CONTRACT_FIELDS, make_event
from recsys.streaming.producer import EventProducer

__all__ = ["CONTRACT_FIELDS", "KafkaSink", "make_event"]  # the service imports make_event from here


class KafkaSink:
    """The stream's producer (acks=all, keyed by user); `send` waits for the broker's acknowledgement so an
    accepted event is stored. SASL/SSL settings come from the KAFKA_* environment variables
    (recsys.streaming.config)."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout: float = 10.0):
        self.bootstrap_servers, self.topic, self.timeout = bootstrap_servers, topic, timeout
        kafka = kafka_from_env(bootstrap_servers).model_copy(update={"client_id": "recsys-serving"})
        self._producer = EventProducer(topic, kafka.client_config(), timeout, linger_ms=0)  # no batching wait

    def send(self, event: dict) -> None:
        self._producer.send(event)

    def close(self) -> None:
        self._producer.close(timeout=5)
