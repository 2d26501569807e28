"""Feedback events as the online state takes them: validation and normalisation.

The online state (recsys/serving/state.py) applies them; this module only checks and shapes them.

`Recommender.record_feedback` accepts a DataFrame, a list of dicts or one dict with user_id, item_id,
event_type and optionally timestamp (ISO 8601 string, epoch seconds or datetime; default: now). Event types
are the data contract's (recsys.data.schema.EVENT_TYPES) plus "impression" (an item was displayed: counts
towards impression fatigue, is not history). A bad event raises InvalidRequest naming the row and field,
and nothing of the batch is applied.
"""

from __future__ import annotations

from numbers import Real

import numpy as np
import pandas as pd

from recsys.data.schema import EVENT_TYPE, EVENT_TYPES, ITEM_ID, TIMESTAMP, USER_ID
from recsys.serving.errors import InvalidRequest

IMPRESSION = "impression"
EVENT_ID = "event_id"  # the idempotency key of the event contract (recsys.streaming.events); optional here
FEEDBACK_TYPES = (*EVENT_TYPES, IMPRESSION)
MAX_EVENTS = 10_000  # per call: bounds the work one request can cause
MAX_ID_LENGTH = 256


def normalise_events(events, now: float) -> pd.DataFrame:
    """DataFrame[user_id, item_id, event_type, timestamp (UTC)] or InvalidRequest."""
    if isinstance(events, dict):
        events = [events]
    if isinstance(events, pd.DataFrame):
        frame = events.copy()
    elif isinstance(events, (list, tuple)):
        if not all(isinstance(e, dict) for e in events):
            raise InvalidRequest("feedback events must be objects with user_id, item_id, event_type", "events")
        frame = pd.DataFrame(list(events))
    else:
        raise InvalidRequest(f"feedback must be a list of events, got {type(events).__name__}", "events")
    if len(frame) > MAX_EVENTS:
        raise InvalidRequest(f"{len(frame)} events in one call; at most {MAX_EVENTS}", "events")
    if not len(frame):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in (USER_ID, ITEM_ID, EVENT_TYPE)}).assign(
            **{TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]"), EVENT_ID: pd.Series(dtype=object)})
    for col in (USER_ID, ITEM_ID, EVENT_TYPE):
        if col not in frame.columns:
            raise InvalidRequest(f"feedback events need {col!r}", f"events.{col}")
        bad = [i for i, v in enumerate(frame[col]) if not _is_id(v)]
        if bad:
            raise InvalidRequest(f"events[{bad[0]}].{col} must be a non-empty string of at most "
                                 f"{MAX_ID_LENGTH} characters, got {frame[col].iloc[bad[0]]!r}", f"events.{col}")
        frame[col] = frame[col].astype(str)
    unknown = ~frame[EVENT_TYPE].isin(FEEDBACK_TYPES)
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise InvalidRequest(f"events[{i}].event_type {frame[EVENT_TYPE].iloc[i]!r} is not one of "
                             f"{list(FEEDBACK_TYPES)}", "events.event_type")
    frame[TIMESTAMP] = _timestamps(frame[TIMESTAMP] if TIMESTAMP in frame.columns else None, len(frame), now)
    ids = frame[EVENT_ID] if EVENT_ID in frame.columns else pd.Series([None] * len(frame), index=frame.index)
    frame[EVENT_ID] = [None if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in ids]
    return frame[[USER_ID, ITEM_ID, EVENT_TYPE, TIMESTAMP, EVENT_ID]].reset_index(drop=True)


def _is_id(v) -> bool:
    if isinstance(v, bool):
        return False
    if isinstance(v, (int, np.integer)):
        return True
    return isinstance(v, str) and 0 < len(v) <= MAX_ID_LENGTH


def _timestamps(values: pd.Series | None, n: int, now: float) -> pd.Series:
    default = pd.Timestamp(now, unit="s", tz="UTC")
    if values is None:
        return pd.Series([default] * n, dtype="datetime64[ns, UTC]")
    out = []
    for i, v in enumerate(values.tolist()):
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(default)
            continue
        try:
            if isinstance(v, bool):
                raise ValueError
            ts = pd.Timestamp(v, unit="s", tz="UTC") if isinstance(v, Real) else pd.Timestamp(v)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
        except (ValueError, TypeError, OverflowError):
            raise InvalidRequest(f"events[{i}].timestamp {v!r} is not an ISO 8601 time or epoch seconds",
                                 "events.timestamp") from None
        out.append(ts)
    return pd.Series(out, dtype="datetime64[ns, UTC]")


FAST_MAX = 100  # events per call taking the per-event path below


def fast_events(events, now: float) -> list[tuple] | None:
    """(user_id, item_id, event_type, seconds, event_id or None) for a short list of well-formed events with
    string ids and epoch-second (or no) timestamps: what the service's /feedback and the stream send. None
    means "take the DataFrame path", which also produces the precise error for a bad event."""
    if isinstance(events, dict):
        events = [events]
    if not isinstance(events, (list, tuple)) or len(events) > FAST_MAX:
        return None
    out = []
    for e in events:
        if not isinstance(e, dict):
            return None
        u, i, kind, ts, key = e.get(USER_ID), e.get(ITEM_ID), e.get(EVENT_TYPE), e.get(TIMESTAMP), e.get(EVENT_ID)
        if not (isinstance(u, str) and isinstance(i, str) and 0 < len(u) <= MAX_ID_LENGTH
                and 0 < len(i) <= MAX_ID_LENGTH and kind in FEEDBACK_TYPES):
            return None
        if ts is None:
            ts = now
        elif isinstance(ts, bool) or not isinstance(ts, Real) or not np.isfinite(ts):
            return None
        # the same rounding to nanoseconds as the DataFrame path (History keeps seconds as float)
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_ID_LENGTH):
            return None
        out.append((u, i, kind, pd.Timestamp(float(ts), unit="s").value / 1e9, key))
    return out


def append_event(history, user: str, pos: int, seconds: float, weight: float) -> bool:
    """Append one event at the end of a user's history (the usual case: events arrive in time order).
    False when it would not be the newest (History.add then merges it in time order). History has no
    single-event method; a DataFrame per event costs ~5 ms, so its arrays are extended here, read-modify-
    write under the online state's lock, with the same dtypes History.add produces."""
    items, times = history._items.get(user), history._ts.get(user)
    if items is None:
        history._items[user] = np.array([pos], dtype=np.int64)
        history._ts[user] = np.array([seconds])
        history._w[user] = np.array([weight])
        return True
    if len(times) and seconds < times[-1]:
        return False
    history._ts[user] = np.append(times, seconds)
    history._w[user] = np.append(history._w[user], weight)
    history._items[user] = np.append(items, np.int64(pos))  # last: `user in history` sees a whole event
    return True
