"""A brute-force reference of the batch views, straight from the definitions (recsys.features.definitions):
for every entity and snapshot T, filter the raw events in [T - W days, T) and count. Quadratic, for a few
thousand events in tests; both engines share recsys.features.sql, so this is what holds the SQL itself to
the definitions. Also a small random log that hits the edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.features.definitions import ITEM_POPULARITY, USER_ACTIVITY, USER_AFFINITY, FeatureSpec

DAY_US = 86_400_000_000


def reference_tables(interactions: pd.DataFrame, items: pd.DataFrame, spec: FeatureSpec,
                     last: int | None = None) -> dict[str, pd.DataFrame]:
    """{view: frame} with the views' columns (event_timestamp as UTC timestamps), sorted by entity and T."""
    ev = interactions.assign(us=pd.to_datetime(interactions.timestamp, utc=True).astype("datetime64[us, UTC]")
                             .astype("int64"), user_id=interactions.user_id.astype(str),
                             item_id=interactions.item_id.astype(str), event_type=interactions.event_type.astype(str))
    ev["day"] = ev.us // DAY_US
    last = int(ev.day.max()) + 1 if last is None else last
    attrs = items.astype({"item_id": str}).set_index("item_id")
    for column in spec.numeric:
        ev[column] = pd.to_numeric(attrs[column], errors="coerce").reindex(ev.item_id).to_numpy(np.float64)
    for column in spec.attributes:
        values = {i: {v.strip() for v in str(x).split("|")} for i, x in attrs[column].items() if pd.notna(x)}
        ev[column] = [values.get(i, set()) for i in ev.item_id]
    out = {}
    for view, key, entity in ((USER_ACTIVITY, "user_id", "user"), (USER_AFFINITY, "user_id", "user"),
                              (ITEM_POPULARITY, "item_id", "item")):
        rows = []
        for k, group in ev.groupby(key):
            us, types = group.us.to_numpy(), group.event_type.to_numpy()
            snapshots = sorted({d + lag for d in group.day for lag in range(1, spec.max_window + 1)
                                if d + lag <= last})
            for t in snapshots:
                row = {key: k, "event_timestamp": pd.Timestamp(t * DAY_US, unit="us", tz="UTC")}
                for w in spec.windows_days:
                    inside = (us >= (t - w) * DAY_US) & (us < t * DAY_US)
                    n = int(inside.sum())
                    if view == USER_AFFINITY:
                        for column in spec.attributes:
                            carried = group[column].to_numpy()[inside]
                            shares = [np.float32(sum(v in s for s in carried) / n) for v in spec.vocabularies[column]
                                      ] if n else None
                            row[f"user_{column}_share_{w}d"] = None if shares is None else np.array(shares, np.float32)
                        continue
                    counts = {e: int((types[inside] == e).sum()) for e in spec.event_types}
                    for e in spec.event_types:
                        row[f"{entity}_{e}_{w}d"] = counts[e]
                    row[f"{entity}_events_{w}d"] = n
                    for name, (num, den) in spec.ratios.items():
                        row[f"{entity}_{name}_{w}d"] = counts[num] / counts[den] if counts[den] else np.nan
                    for column in spec.numeric if view == USER_ACTIVITY else ():
                        known = group[column].to_numpy()[inside]
                        known = known[~np.isnan(known)]
                        row[f"user_{column}_mean_{w}d"] = known.mean() if len(known) else np.nan
                if view != USER_AFFINITY:
                    row[f"{entity}_days_since_last_event"] = (t * DAY_US - us[us < t * DAY_US].max()) / DAY_US
                rows.append(row)
        frame = pd.DataFrame(rows)
        frame["date"] = frame.event_timestamp.dt.strftime("%Y-%m-%d")
        out[view] = frame[spec.columns(view)].sort_values([key, "event_timestamp"], ignore_index=True)
    return out


def edge_case_log(seed: int = 0, n_events: int = 400) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A random log over ~100 days with: multi-valued ("a | b") and missing attributes, items absent from the
    items table, missing and non-numeric prices, events at midnight, users idle longer than 30 days, users
    and items with a single event."""
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2025-01-01", tz="UTC")
    users = [f"u{i}" for i in range(12)]
    item_ids = [f"i{i}" for i in range(10)]
    timestamps = start + pd.to_timedelta(rng.integers(0, 100 * 86400, n_events), unit="s")
    timestamps = np.where(rng.random(n_events) < 0.1, timestamps.floor("D"), timestamps)  # midnights
    interactions = pd.DataFrame({
        "user_id": rng.choice(users, n_events), "item_id": rng.choice(item_ids + ["ghost"], n_events),
        "timestamp": pd.to_datetime(timestamps, utc=True),
        "event_type": rng.choice(["view", "click", "booking"], n_events, p=[0.6, 0.3, 0.1])})
    # u0: two bursts 60 days apart (idle longer than the longest window); u_single / i_single: one event
    burst = pd.DataFrame({"user_id": "u0", "item_id": "i1", "event_type": "view",
                          "timestamp": [start + pd.Timedelta(days=2, hours=3), start + pd.Timedelta(days=62)]})
    single = pd.DataFrame({"user_id": ["u_single"], "item_id": ["i_single"], "event_type": ["click"],
                           "timestamp": [start + pd.Timedelta(days=40, hours=23, minutes=59)]})
    interactions = pd.concat([interactions[interactions.user_id != "u0"], burst, single], ignore_index=True)
    categories = ["beach", "city | beach", None, "ski", "city", "beach|ski", None, "resort", "city", "ski", "beach"]
    items = pd.DataFrame({"item_id": item_ids + ["i_single"], "category": categories,
                          "destination": ["Rome", "Paris", "Rome", None, "Oslo", "Paris", "Rome", "Oslo", None,
                                          "Paris", "Rome"],
                          "price": [100.0, np.nan, 250.5, 80.25, "n/a", 120.0, 99.99, np.nan, 310.0, 55.5, 42.0]})
    return interactions, items
