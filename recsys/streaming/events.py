"""The event contract on Kafka: versioned JSON, one interaction per message, validated field by field.

Where this sits: the service's /feedback, the replayer and any client produce these; the stream consumer
(recsys.streaming) parses them, applies their effects to the online state and archives them; a message that
does not parse goes to `<topic>.dlq` with the error. ARCHITECTURE "Events on Kafka":

    {"v": 1, "event_id": "...", "user_id": "u00042", "item_id": "h0007", "event_type": "click",
     "timestamp": "2026-11-29T10:00:00+00:00", ...optional: value, session_id, request_id, experiment,
     variant, model_version}

`event_id` is the idempotency key: every effect is keyed by it, so a redelivered message changes nothing.
`timestamp` is ISO 8601 (a zone is required; UTC is written) or epoch seconds. Event types are the data
contract's (recsys.data.schema.EVENT_TYPES) plus "impression" (shown, not acted on). A message without
"v" is read as version 1 (what /feedback produced before the field existed).
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime, timezone
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from recsys.data.schema import EVENT_TYPES

SCHEMA_VERSION = 1
IMPRESSION = "impression"
STREAM_EVENT_TYPES = (*EVENT_TYPES, IMPRESSION)
MAX_ID_LENGTH = 256
CONTRACT_FIELDS = ("event_id", "user_id", "item_id", "event_type", "timestamp")

Id = Field(min_length=1, max_length=MAX_ID_LENGTH)


class InvalidEvent(ValueError):
    """A message that is not a contract event; `.field` names the part at fault ("" for the whole message)."""

    def __init__(self, message: str, field: str = ""):
        super().__init__(message)
        self.field = field


class Event(BaseModel):
    """One parsed, valid event. `seconds` is the event time as UTC epoch seconds."""

    model_config = ConfigDict(extra="allow", frozen=True)  # extra fields travel to the archive untouched
    v: Literal[1] = SCHEMA_VERSION
    event_id: str = Id
    user_id: str = Id
    item_id: str = Id
    event_type: Literal[STREAM_EVENT_TYPES]
    timestamp: Union[datetime, float]
    value: Optional[float] = None
    session_id: Optional[str] = Field(None, max_length=MAX_ID_LENGTH)

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value):
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("timestamp needs a time zone (e.g. +00:00 or Z)")
            return value.astimezone(timezone.utc)
        if not math.isfinite(value):
            raise ValueError("timestamp must be finite epoch seconds")
        return datetime.fromtimestamp(value, tz=timezone.utc)

    @property
    def seconds(self) -> float:
        return self.timestamp.timestamp()

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (ISO timestamp), optional fields only when set."""
        data = self.model_dump(exclude_none=True)
        data["timestamp"] = self.timestamp.isoformat()
        return data


def parse(raw: bytes | str | dict) -> Event:
    """The event in `raw` (a Kafka message value or a dict), or InvalidEvent naming the field at fault."""
    try:
        if isinstance(raw, dict):
            return Event.model_validate(raw)
        return Event.model_validate_json(raw)
    except ValidationError as error:
        errors = error.errors()
        if errors[0]["type"] in ("json_invalid", "model_type"):
            raise InvalidEvent(f"not a JSON object: {errors[0]['msg']}", "") from None
        fields = list(dict.fromkeys(str(e["loc"][0]) for e in errors if e["loc"]))
        problems = "; ".join(f"{f}: " + " or ".join(dict.fromkeys(e["msg"] for e in errors if e["loc"][:1] == (f,)))
                             for f in fields)
        raise InvalidEvent(problems, fields[0] if fields else "") from None


def make_event(user_id: str, item_id: str, event_type: str, timestamp: datetime | None = None,
               event_id: str | None = None, **extra) -> dict:
    """A contract event as a dict; a missing `event_id` is a new UUID, a missing timestamp is now (UTC).
    Extra fields (experiment, variant, model_version, request_id, ...) are kept when not None."""
    ts = timestamp or datetime.now(timezone.utc)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=timezone.utc)
    event = {"v": SCHEMA_VERSION, "event_id": event_id or uuid.uuid4().hex, "user_id": str(user_id),
             "item_id": str(item_id), "event_type": event_type, "timestamp": ts.astimezone(timezone.utc).isoformat()}
    event.update({k: v for k, v in extra.items() if v is not None})
    return event


def encode(event: dict | Event) -> bytes:
    """The message value for Kafka."""
    return json.dumps(event.to_dict() if isinstance(event, Event) else event, separators=(",", ":")).encode()
