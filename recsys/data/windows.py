"""Interactions by time range: what the monitoring loop reads as "what happened since the model was trained".

Where this sits: the drift and retrain pipelines read three ranges from one `EventSource`: the reference
(the last days of the production model's training data), the events between its training data and the
window, and the current window; the challenger reads everything before the window. Sources (`current` in
configs/drift.yaml and configs/retrain.yaml):

- `synthetic`: the embedded default; the training period from `generate_travel_data`, every later day
  simulated on demand (recsys.data.shifts) with an optional planted `shift`. Unbounded: any window exists.
- `archive`: the Parquet event archive the stream consumer writes (date-partitioned, deduplicated by
  event_id), with the items / users tables of a `catalog` source (the model's training source). Bounded by
  the newest archived event.
- `files`: the user's files (recsys.data.files) cut by time. Bounded by their newest event.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from recsys.data.schema import TIMESTAMP, Dataset
from recsys.data.validation import validate_dataset

KINDS = ("synthetic", "archive", "files")


class EventSource:
    """`read(start, end)`: the interactions with timestamps in [start, end) (validated, time-sorted), the
    catalogue as of `end` and the users; `end()`: the newest event's time (None: unbounded)."""

    def __init__(self, kind: str, params: Mapping | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown event source {kind!r}; choose one of {list(KINDS)}")
        self.kind, self.params = kind, dict(params or {})
        self._frame: Dataset | None = None

    def read(self, start: pd.Timestamp, end: pd.Timestamp) -> Dataset:
        start, end = _utc(start), _utc(end)
        if self.kind == "synthetic":
            from recsys.data.shifts import travel_timeline

            found = travel_timeline(self.params, start, max(start, end))
            if not len(found.interactions):  # an empty range: the catalogue, no events (validation wants rows)
                return Dataset(found.interactions, found.items, found.users, found.name)
            return validate_dataset(found)
        whole = self._whole()
        keep = (whole.interactions[TIMESTAMP] >= start) & (whole.interactions[TIMESTAMP] < end)
        return Dataset(whole.interactions[keep].reset_index(drop=True), whole.items, whole.users, whole.name)

    def end(self) -> pd.Timestamp | None:
        if self.kind == "synthetic":
            return None
        interactions = self._whole().interactions
        return interactions[TIMESTAMP].max() + pd.Timedelta(microseconds=1) if len(interactions) else None

    def _whole(self) -> Dataset:
        if self._frame is None:
            if self.kind == "files":
                from recsys.data.files import load_user_files

                self._frame = validate_dataset(load_user_files(**self.params))
            else:
                self._frame = self._archive()
        return self._frame

    def _archive(self) -> Dataset:
        from recsys.data.loader import read_dataset
        from recsys.streaming.archive import read_archive

        params = dict(self.params)
        catalog = params.pop("catalog", None) or {}
        events = read_archive(params.pop("root", "data/events"))
        base = read_dataset(catalog["source"], catalog.get("source_params")) if catalog else None
        items = base.items if base is not None else None
        users = base.users if base is not None else None
        return validate_dataset(Dataset(events, items, users, name="event-archive"))


def _utc(value) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
