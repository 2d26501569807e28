"""Feedback events as the online state takes them: validation and normalisation.

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
            **{TIMESTAMP: pd.Series(dtype="datetime64[ns, UTC]")})
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
    return frame[[USER_ID, ITEM_ID, EVENT_TYPE, TIMESTAMP]].reset_index(drop=True)


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


def apply(rec, events) -> dict:
    """Apply feedback (DataFrame / list of dicts: user_id, item_id, event_type, timestamp) to the online
    state: history (so the next recommend personalises on and filters it) and impression fatigue
    (engagement clears it; event_type "impression" adds to it). Returns counts."""
    frame = normalise_events(events, rec.clock())
    pos = rec.catalog.positions(frame[ITEM_ID].to_numpy())
    is_imp = (frame[EVENT_TYPE] == IMPRESSION).to_numpy()
    with rec._lock:
        for (user, imp), block in frame.assign(_p=pos, _i=is_imp)[pos >= 0].groupby([USER_ID, "_i"]):
            if imp:
                rec.impressions.record(user, block._p.to_numpy(), block.timestamp.max().timestamp())
            else:
                rec.impressions.engage(user, block._p.to_numpy())
        events_ = frame[~is_imp]
        if len(events_):
            rec.history.add(events_)
            seconds = (events_[TIMESTAMP].astype("int64") / 1e9).tolist()
            rec.journal.extend(zip(events_[USER_ID].tolist(), events_[ITEM_ID].tolist(),
                                   events_[EVENT_TYPE].tolist(), seconds))
    return {"applied": int((pos >= 0).sum()), "unknown_items": int((pos < 0).sum()),
            "impressions": int(is_imp.sum())}
