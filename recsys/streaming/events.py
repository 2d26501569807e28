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
import re
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
    value: Optional[float] = Field(None, allow_inf_nan=False)
    session_id: Optional[str] = Field(None, max_length=MAX_ID_LENGTH)

    @field_validator("v", "timestamp", mode="before")
    @classmethod
    def _not_bool(cls, value, info):  # JSON true is not a version or a time (pydantic would read it as 1)
        if isinstance(value, bool):
            raise ValueError("the schema version is the number 1" if info.field_name == "v" else
                             "must be epoch seconds or an ISO 8601 string, not a boolean")
        return value

    @field_validator("timestamp")
    @classmethod
    def _aware(cls, value):
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("timestamp needs a time zone (e.g. +00:00 or Z)")
            return value.astimezone(timezone.utc)
        if not math.isfinite(value):
            raise ValueError("timestamp must be finite epoch seconds")
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):  # beyond what a datetime holds: bad input, not a crash
            raise ValueError(f"timestamp {value!r} is out of range for epoch seconds") from None

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


class StreamEvent:
    """A valid event as the stream consumer handles it (what `decode` returns): the contract's fields,
    `seconds` (UTC epoch seconds, computed once) and `extra` (every other field, for the archive)."""

    __slots__ = ("event_id", "user_id", "item_id", "event_type", "seconds", "value", "session_id", "extra")

    def __init__(self, event_id: str, user_id: str, item_id: str, event_type: str, seconds: float,
                 value: float | None = None, session_id: str | None = None, extra: dict | None = None):
        self.event_id, self.user_id, self.item_id, self.event_type = event_id, user_id, item_id, event_type
        self.seconds, self.value, self.session_id, self.extra = seconds, value, session_id, extra or {}

    @classmethod
    def of(cls, event: Event) -> StreamEvent:
        return cls(event.event_id, event.user_id, event.item_id, event.event_type, event.seconds, event.value,
                   event.session_id, dict(event.__pydantic_extra__ or {}))

    def astuple(self) -> tuple:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other) -> bool:
        return isinstance(other, StreamEvent) and self.astuple() == other.astuple()

    def __repr__(self) -> str:
        return f"StreamEvent{self.astuple()!r}"


_FIELDS = frozenset(Event.model_fields)
_TYPES = frozenset(STREAM_EVENT_TYPES)
# The usual RFC 3339 forms, read identically by datetime.fromisoformat and pydantic; others go to `parse`.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})")
_JSON = None


def _id(value) -> bool:
    return type(value) is str and 0 < len(value) <= MAX_ID_LENGTH


def decode(raw: bytes) -> StreamEvent:
    """`parse` for the stream consumer: the same events accepted with the same values, the same InvalidEvent
    for the rest, at a fraction of the cost for the usual message. msgspec decodes the JSON; a whitelist of the
    usual forms (short string ids, a known event type, an RFC 3339 or epoch-seconds time, a finite number or
    null value) is checked here; anything else goes through `parse` (pydantic) and its error.
    Hand-written (the whitelist): pydantic's validation cost ~5x the decode at the consumer's rate;
    tests/recsys/streaming/test_contract.py checks both agree on generated messages."""
    global _JSON
    if _JSON is None:
        import msgspec

        _JSON = msgspec.json.Decoder()
    try:
        data = _JSON.decode(raw)
    except Exception:  # noqa: BLE001 - not JSON (or not what msgspec reads): parse says why
        return StreamEvent.of(parse(raw))
    if type(data) is not dict:
        return StreamEvent.of(parse(raw))
    get = data.get
    event_id, user_id, item_id, kind = get("event_id"), get("user_id"), get("item_id"), get("event_type")
    value, session, ts = get("value"), get("session_id"), get("timestamp")
    v = get("v", SCHEMA_VERSION)
    seconds = None
    if type(ts) is str and len(ts) <= 32 and _RFC3339.fullmatch(ts):
        try:
            seconds = datetime.fromisoformat(ts).timestamp()
        except ValueError:
            pass
    elif type(ts) in (int, float) and 0 <= ts < 1e10:
        seconds = datetime.fromtimestamp(ts, tz=timezone.utc).timestamp()
    if (seconds is None or type(v) is not int or v != SCHEMA_VERSION or not (_id(event_id) and _id(user_id)
            and _id(item_id)) or type(kind) is not str or kind not in _TYPES
            or not (value is None or (type(value) is float and math.isfinite(value))
                    or (type(value) is int and abs(value) < 2**53))
            or not (session is None or (type(session) is str and len(session) <= MAX_ID_LENGTH))):
        return StreamEvent.of(parse(raw))
    known = 5 + ("v" in data) + ("value" in data) + ("session_id" in data)
    extra = {k: x for k, x in data.items() if k not in _FIELDS} if len(data) > known else {}
    return StreamEvent(event_id, user_id, item_id, kind, seconds, None if value is None else float(value),
                       session, extra)
