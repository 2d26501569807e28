"""The feature job on pandas: the same definitions as the PySpark job, for small data and tests.

recsys.features.spark_job is the engine at scale; this one computes the very same tables (a parity test
runs both on one input) without a JVM, which is what the train pipeline uses on the small embedded data.

Algorithm (both engines): aggregate events per (entity, UTC day); give each day's aggregate to the snapshots
T = day + 1 .. day + max(windows) (lag = T - day), and sum, per snapshot and window W, the aggregates with
lag <= W: exactly the events in [T - W days, T). Snapshots stop at `last_snapshot` (the job's "now").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from recsys.features.definitions import (
    EVENT_TIMESTAMP,
    ITEM_KEY,
    ITEM_POPULARITY,
    PARTITION,
    SNAPSHOT_SECONDS,
    USER_ACTIVITY,
    USER_AFFINITY,
    USER_KEY,
    FeatureSpec,
)

DAY_US = SNAPSHOT_SECONDS * 1_000_000


def snapshot_bounds(timestamps: pd.Series, as_of=None) -> tuple[int, int]:
    """(first, last) snapshot day numbers (days since the epoch) for events at `timestamps`. Without
    `as_of`, the last snapshot closes the day of the latest event (historical data: that day is complete);
    with it, the last is the latest UTC midnight <= as_of (a daily job: "now")."""
    us = _micros(timestamps)
    first = int(us.min() // DAY_US) + 1
    last = int(us.max() // DAY_US) + 1 if as_of is None else int(_micros(pd.Series([as_of]))[0] // DAY_US)
    return first, last


def _micros(timestamps: pd.Series) -> np.ndarray:
    return pd.to_datetime(timestamps, utc=True).astype("datetime64[us, UTC]").astype("int64").to_numpy()


def compute_tables(interactions: pd.DataFrame, items: pd.DataFrame, spec: FeatureSpec,
                   last_snapshot: int | None = None) -> dict[str, pa.Table]:
    """The batch views as Arrow tables in the spec's schema: {view name: table}."""
    if not spec.resolved:
        raise ValueError("resolve the FeatureSpec on the data first (FeatureSpec.resolve)")
    events = pd.DataFrame({USER_KEY: interactions[USER_KEY].astype(str).to_numpy(),
                           ITEM_KEY: interactions[ITEM_KEY].astype(str).to_numpy(),
                           "us": _micros(interactions["timestamp"]),
                           "event_type": interactions["event_type"].astype(str).to_numpy()})
    events["day"] = events.us // DAY_US
    if last_snapshot is None:
        last_snapshot = int(events.us.max() // DAY_US) + 1
    attrs = items.astype({ITEM_KEY: str}).drop_duplicates(ITEM_KEY).set_index(ITEM_KEY)
    for column in spec.numeric:
        events[column] = pd.to_numeric(attrs[column], errors="coerce").reindex(events[ITEM_KEY]).to_numpy(np.float64)

    user = _activity(events, USER_KEY, spec, last_snapshot, numeric=spec.numeric)
    item = _activity(events, ITEM_KEY, spec, last_snapshot, numeric=())
    shares = _affinity(events, attrs, user, spec, last_snapshot)
    return {USER_ACTIVITY: _to_arrow(user, USER_ACTIVITY, spec),
            ITEM_POPULARITY: _to_arrow(item, ITEM_POPULARITY, spec),
            USER_AFFINITY: _to_arrow(user, USER_AFFINITY, spec, shares)}


def _expand(daily: pd.DataFrame, key: str, max_window: int, last_snapshot: int) -> pd.DataFrame:
    """Each (key, day) row once per snapshot it counts in: T = day + lag, lag = 1 .. max_window."""
    lags = np.tile(np.arange(1, max_window + 1), len(daily))
    out = daily.loc[daily.index.repeat(max_window)].reset_index(drop=True)
    out["lag"] = lags
    out["T"] = out["day"] + out["lag"]
    return out[out["T"] <= last_snapshot]


def _windowed_sums(expanded: pd.DataFrame, key: str, columns: list[str], windows) -> pd.DataFrame:
    """Per (key, T): for each column and window W, the sum over lags <= W (named `<column>@<W>`)."""
    sums = {f"{c}@{w}": expanded[c].where(expanded["lag"] <= w, 0) for c in columns for w in windows}
    frame = pd.DataFrame({key: expanded[key], "T": expanded["T"], **sums, "last_us": expanded["last_us"]})
    agg = {name: "sum" for name in sums} | {"last_us": "max"}
    return frame.groupby([key, "T"], sort=True).agg(agg).reset_index()


def _activity(events: pd.DataFrame, key: str, spec: FeatureSpec, last_snapshot: int, numeric) -> pd.DataFrame:
    """Windowed counts per event type and in total, ratios, recency (and numeric means for users)."""
    counts = events.groupby([key, "day", "event_type"]).size().unstack(fill_value=0).reindex(
        columns=list(spec.event_types), fill_value=0)
    counts.columns = [f"n_{e}" for e in spec.event_types]
    daily = counts.astype(np.int64)
    daily["n_all"] = daily.sum(axis=1)
    daily["last_us"] = events.groupby([key, "day"]).us.max()
    sum_columns = [*counts.columns, "n_all"]
    for column in numeric:
        known = events[column].notna()
        grouped = events.assign(v=events[column].where(known, 0.0), c=known.astype(np.int64)).groupby([key, "day"])
        daily[f"sum_{column}"] = grouped.v.sum()
        daily[f"cnt_{column}"] = grouped.c.sum()
        sum_columns += [f"sum_{column}", f"cnt_{column}"]
    daily = daily.reset_index()
    win = _windowed_sums(_expand(daily, key, spec.max_window, last_snapshot), key, sum_columns, spec.windows_days)
    entity = "user" if key == USER_KEY else "item"
    out = {key: win[key], "T": win["T"]}
    for e in spec.event_types:
        for w in spec.windows_days:
            out[f"{entity}_{e}_{w}d"] = win[f"n_{e}@{w}"].astype(np.int64)
    for w in spec.windows_days:
        out[f"{entity}_events_{w}d"] = win[f"n_all@{w}"].astype(np.int64)
    for name, (num, den) in spec.ratios.items():
        for w in spec.windows_days:
            out[f"{entity}_{name}_{w}d"] = _ratio(win[f"n_{num}@{w}"], win[f"n_{den}@{w}"])
    out[f"{entity}_days_since_last_event"] = (win["T"] * DAY_US - win["last_us"]) / DAY_US
    for column in numeric:
        for w in spec.windows_days:
            out[f"{entity}_{column}_mean_{w}d"] = _ratio(win[f"sum_{column}@{w}"], win[f"cnt_{column}@{w}"])
    return pd.DataFrame(out)


def _ratio(num: pd.Series, den: pd.Series) -> np.ndarray:
    num, den = num.to_numpy(np.float64), den.to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _affinity(events, attrs, user: pd.DataFrame, spec: FeatureSpec, last_snapshot: int) -> dict[str, pa.Array]:
    """Per row of `user` (user, T), for each attribute and window: the share of the user's events in the
    window on items carrying each value of the attribute's vocabulary (an "a|b" item counts for both). Null
    when the user had no event in that window."""
    out = {}
    row_of = pd.Series(np.arange(len(user)), index=pd.MultiIndex.from_frame(user[[USER_KEY, "T"]]))
    for column in spec.attributes:
        vocab = {v: k for k, v in enumerate(spec.vocabularies[column])}
        values = attrs[column].dropna().astype(str).str.split("|").explode().str.strip().map(vocab).dropna()
        tagged = events[[USER_KEY, ITEM_KEY, "day", "us"]].merge(
            values.astype(np.int64).rename("v").rename_axis(ITEM_KEY).reset_index(), on=ITEM_KEY)
        daily = tagged.groupby([USER_KEY, "day", "v"]).size().rename("n").reset_index()
        expanded = _expand(daily, USER_KEY, spec.max_window, last_snapshot)
        sums = {w: expanded["n"].where(expanded["lag"] <= w, 0) for w in spec.windows_days}
        frame = pd.DataFrame({USER_KEY: expanded[USER_KEY], "T": expanded["T"], "v": expanded["v"],
                              **{f"n@{w}": s for w, s in sums.items()}})
        per_value = frame.groupby([USER_KEY, "T", "v"]).sum().reset_index()
        rows = row_of.reindex(pd.MultiIndex.from_frame(per_value[[USER_KEY, "T"]])).to_numpy()
        for w in spec.windows_days:
            matrix = np.zeros((len(user), len(vocab)))
            np.add.at(matrix, (rows, per_value["v"].to_numpy()), per_value[f"n@{w}"].to_numpy(np.float64))
            total = user[f"user_events_{w}d"].to_numpy(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                share = (matrix / total[:, None]).astype(np.float32)
            out[f"user_{column}_share_{w}d"] = _list_array(share, total > 0)
    return out


def _list_array(matrix: np.ndarray, valid: np.ndarray) -> pa.Array:
    """Rows of `matrix` as an Arrow list<float32> array, null where not `valid`."""
    n, k = matrix.shape
    offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32) if k else np.zeros(n + 1, np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(matrix.ravel(), pa.float32()), mask=pa.array(~valid))


def _to_arrow(frame: pd.DataFrame, view: str, spec: FeatureSpec, arrays: dict | None = None) -> pa.Table:
    schema = spec.arrow_schema(view)
    seconds = frame["T"].to_numpy(np.int64) * SNAPSHOT_SECONDS
    stamps = pd.to_datetime(seconds, unit="s", utc=True)
    columns = {schema.field(0).name: pa.array(frame.iloc[:, 0].to_numpy(object), pa.string()),
               EVENT_TIMESTAMP: pa.array(stamps.astype("datetime64[us, UTC]"), schema.field(1).type)}
    for name in spec.names(view):
        columns[name] = arrays[name] if arrays and name in arrays else pa.array(
            frame[name].to_numpy(), schema.field(name).type, from_pandas=True)
    days, inverse = np.unique(seconds, return_inverse=True)  # format each distinct date once
    dates = pd.to_datetime(days, unit="s", utc=True).strftime("%Y-%m-%d").to_numpy(object)
    columns[PARTITION] = pa.array(dates[inverse], pa.string())
    return pa.table(columns, schema=schema)
