"""Step: the three time ranges a drift check compares: reference, the gap before the window, the window.

The reference is the last `reference_days` of the production model's training data, the window the
`window_days` after the last window checked for this model name (or after its training data, the first
time), the gap the events between the two (the model learns them as serving history before scoring the
window). On the embedded default every run therefore checks the next simulated week; on the event archive
or files a window is checked only once its days have passed (a later run picks it up).
"""

from typing import Annotated, Any, Dict, Optional, Tuple

import pandas as pd
from zenml import step
from zenml.logger import get_logger

from recsys.data.windows import EventSource
from steps.context import previous_verdicts
from steps.names import BEFORE_WINDOW, CURRENT_WINDOW, REFERENCE_WINDOW, WINDOW, WINDOW_ITEMS, WINDOW_USERS

logger = get_logger(__name__)


@step(enable_cache=False)  # "the next window" depends on earlier runs
def load_windows(promoted_info: Dict[str, Any], current: Dict[str, Any], window_days: float = 7.0,
                 reference_days: float = 28.0, window_start: Optional[str] = None) -> Tuple[
    Annotated[pd.DataFrame, REFERENCE_WINDOW],
    Annotated[pd.DataFrame, BEFORE_WINDOW],
    Annotated[pd.DataFrame, CURRENT_WINDOW],
    Annotated[pd.DataFrame, WINDOW_ITEMS],
    Annotated[pd.DataFrame, WINDOW_USERS],
    Annotated[Dict[str, Any], WINDOW],
]:
    """`current`: {source: synthetic | archive | files, params: {...}} (recsys.data.windows); `window_start`
    (ISO time) pins the window instead of continuing after the last one checked."""
    source = EventSource(current["source"], current.get("params"))
    data_end = pd.Timestamp(promoted_info["data_window"]["end"])
    if window_start:
        start = pd.Timestamp(window_start, tz="UTC") if pd.Timestamp(window_start).tzinfo is None \
            else pd.Timestamp(window_start)
    else:
        checked = [pd.Timestamp(v.window_end) for v in previous_verdicts(promoted_info["name"]) if not v.skipped]
        start = max([data_end, *checked])
    end = start + pd.Timedelta(days=window_days)
    available = source.end()
    reference = source.read(data_end - pd.Timedelta(days=reference_days), data_end)
    before = source.read(data_end, start)
    if available is not None and available < end:
        logger.info("window %s .. %s is not complete (events up to %s): nothing to check yet", start, end, available)
        window = source.read(start, start)  # empty, with the catalogue
    else:
        window = source.read(start, end)
    info = {"start": start.isoformat(), "end": end.isoformat(), "data_end": data_end.isoformat(),
            "available_until": None if available is None else available.isoformat(),
            "events": len(window.interactions), "before_events": len(before.interactions),
            "reference_events": len(reference.interactions)}
    logger.info("window %s .. %s: %d events (%d between the training data and it; reference %d)",
                start, end, info["events"], info["before_events"], info["reference_events"])
    return reference.interactions, before.interactions, window.interactions, window.items, window.users, info
