"""Store features: the one definition of their names, dtypes and meaning, for every engine and the Feast repo.

The batch job (recsys.features.spark_job on PySpark, recsys.features.batch on pandas) writes these tables,
feature_repo/ declares them to Feast from this module, and the ranking stage reads them through a provider
(recsys.features.provider: point-in-time for training, online for serving). Nothing else names a column.

Snapshots. A row of a daily view stamped `event_timestamp = T` (a UTC midnight) summarises the events in
`[T - W days, T)`: computed from events strictly before T, so a point-in-time join at any time >= T uses
no event from after that time. Rows exist for every T at which the entity had an event in the longest
window; a missing row therefore means "no activity in the last max(windows) days", and the views' Feast TTL
(one snapshot period) makes a join return nothing rather than an older, outdated row.

Generic over datasets: per-event-type counts exist only for the event types present (view/click/booking on
the travel data, only "rating" on MovieLens), ratios only where both of their event types exist, and the
categorical / numeric item attributes the affinities use come from config (category and destination, or
genres; price, or year). `FeatureSpec.resolve` fixes all of that from the data once; the resolved spec is
written beside the tables (spec.json) so the Feast repo and the readers agree with the writer.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd

# Columns every table carries; the partition column is the snapshot's UTC date (YYYY-MM-DD).
EVENT_TIMESTAMP = "event_timestamp"
PARTITION = "date"
USER_KEY, ITEM_KEY = "user_id", "item_id"
SNAPSHOT_SECONDS = 86400  # one snapshot per UTC day: windows are whole days

# Feature views (Feast names follow <entity>_<what>_<grain>) and the versioned services built on them.
USER_ACTIVITY = "user_activity_daily"
USER_AFFINITY = "user_affinity_daily"
ITEM_POPULARITY = "item_popularity_daily"
USER_COUNTERS = "user_counters_realtime"  # push source: counters the stream consumer keeps
USER_VECTOR = "user_vector_realtime"  # push source: the user tower's vector of the live history
USER_EVENTS = "user_events_realtime"  # push source: the user's recent events (recsys.streaming.state)
BATCH_VIEWS = (USER_ACTIVITY, USER_AFFINITY, ITEM_POPULARITY)
PUSH_VIEWS = (USER_COUNTERS, USER_VECTOR, USER_EVENTS)
SERVICES = {
    "user_ranking_daily_v1": (USER_ACTIVITY, USER_AFFINITY),
    "item_ranking_daily_v1": (ITEM_POPULARITY,),
    "user_ranking_realtime_v1": (USER_COUNTERS,),
    "user_retrieval_realtime_v1": (USER_VECTOR,),
    "user_events_realtime_v1": (USER_EVENTS,),
}
ENTITY_OF = {USER_ACTIVITY: USER_KEY, USER_AFFINITY: USER_KEY, ITEM_POPULARITY: ITEM_KEY,
             USER_COUNTERS: USER_KEY, USER_VECTOR: USER_KEY, USER_EVENTS: USER_KEY}

# Feature dtypes, named once; the Feast repo maps them to feast.types, the writers to Arrow types.
INT64, FLOAT64, FLOAT32_LIST, STRING = "int64", "float64", "float32_list", "string"
STRING_LIST, FLOAT64_LIST = "string_list", "float64_list"

# Where the job writes and the Feast repo reads: <project>/data/features unless RECSYS_FEATURES_DIR says
# otherwise (e.g. a shared path a Spark cluster's workers can reach).
FEATURES_DIR_ENV = "RECSYS_FEATURES_DIR"
SPEC_FILE = "spec.json"


def features_dir(repo_path: str | Path) -> Path:
    """The offline store's directory for the Feast repo at `repo_path`: <repo>/../data/features by default."""
    override = os.environ.get(FEATURES_DIR_ENV)
    return Path(override).resolve() if override else (Path(repo_path).resolve().parent / "data" / "features")


@dataclass(frozen=True)
class FeatureSpec:
    """What to compute. The defaults fit the synthetic travel data; configs/features*.yaml set the rest.

    `event_types`: None = every type present in the data (in the schema's order). `ratios`: name ->
    (numerator event type, denominator event type), kept where both are present. `attributes`: categorical
    item columns ("a|b" = several values) for the user x attribute shares; `numeric`: item columns the user's
    windowed mean is taken of (price affinity). `vocabularies` is filled by `resolve`.
    """

    windows_days: tuple[int, ...] = (1, 7, 30)
    event_types: tuple[str, ...] | None = None
    ratios: dict[str, tuple[str, str]] = field(default_factory=lambda: {
        "ctr": ("click", "view"), "conversion": ("booking", "click")})
    attributes: tuple[str, ...] = ("category", "destination")
    numeric: tuple[str, ...] = ("price",)
    vocabularies: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self):
        windows = tuple(sorted({int(w) for w in self.windows_days}))
        if not windows or windows[0] < 1:
            raise ValueError(f"windows_days must be whole days >= 1, got {self.windows_days}")
        object.__setattr__(self, "windows_days", windows)
        if self.event_types is not None:
            object.__setattr__(self, "event_types", tuple(self.event_types))
        object.__setattr__(self, "ratios", {k: tuple(v) for k, v in self.ratios.items()})
        object.__setattr__(self, "attributes", tuple(self.attributes))
        object.__setattr__(self, "numeric", tuple(self.numeric))
        object.__setattr__(self, "vocabularies", {k: tuple(v) for k, v in self.vocabularies.items()})

    @property
    def max_window(self) -> int:
        return self.windows_days[-1]

    @property
    def resolved(self) -> bool:
        return self.event_types is not None and set(self.vocabularies) == set(self.attributes)

    def resolve(self, interactions: pd.DataFrame, items: pd.DataFrame) -> FeatureSpec:
        """Fix the data-dependent parts: event types present, ratios computable, attribute vocabularies
        (sorted values in the items table) and the attribute / numeric columns the items table has."""
        from recsys.data.schema import EVENT_TYPES

        present = set(interactions["event_type"].astype(str).unique())
        wanted = self.event_types if self.event_types is not None else EVENT_TYPES
        types = tuple(t for t in wanted if t in present)  # validation admits only EVENT_TYPES
        attributes = tuple(a for a in self.attributes if a in items.columns)
        vocabularies = {}
        for column in attributes:
            values = items[column].dropna().astype(str).str.split("|").explode().str.strip()
            vocabularies[column] = tuple(sorted(v for v in values.unique() if v))
        attributes = tuple(a for a in attributes if vocabularies[a])  # an all-null column has nothing to share
        vocabularies = {a: vocabularies[a] for a in attributes}
        numeric = tuple(c for c in self.numeric if c in items.columns
                        and pd.api.types.is_numeric_dtype(pd.to_numeric(items[c], errors="coerce")))
        ratios = {k: v for k, v in self.ratios.items() if v[0] in types and v[1] in types}
        return replace(self, event_types=types, ratios=ratios, attributes=attributes, numeric=numeric,
                       vocabularies=vocabularies)

    # ---- the schema: (name, dtype) per view, in column order ----
    def fields(self, view: str) -> list[tuple[str, str]]:
        if not self.resolved and view in BATCH_VIEWS:
            raise ValueError("the spec is not resolved: call FeatureSpec.resolve(interactions, items) first")
        if view == USER_ACTIVITY:
            return self._counts("user") + [(f"user_{n}_mean_{w}d", FLOAT64) for n in self.numeric
                                           for w in self.windows_days]
        if view == ITEM_POPULARITY:
            return self._counts("item")
        if view == USER_AFFINITY:
            return [(f"user_{a}_share_{w}d", FLOAT32_LIST) for a in self.attributes for w in self.windows_days]
        if view == USER_COUNTERS:
            types = self.event_types or ()
            return ([(f"rt_{e}_{h}h", INT64) for e in types for h in (1, 24)]
                    + [("rt_events_1h", INT64), ("rt_events_24h", INT64), ("rt_last_event_seconds", INT64)])
        if view == USER_VECTOR:
            return [("user_vector", FLOAT32_LIST), ("user_vector_model", STRING)]
        if view == USER_EVENTS:  # parallel lists, oldest first; recsys.streaming.state.UserEvents
            return [("rt_event_ids", STRING_LIST), ("rt_item_ids", STRING_LIST), ("rt_event_types", STRING_LIST),
                    ("rt_event_seconds", FLOAT64_LIST)]
        raise KeyError(f"unknown feature view {view!r}")

    def _counts(self, entity: str) -> list[tuple[str, str]]:
        out = [(f"{entity}_{e}_{w}d", INT64) for e in self.event_types for w in self.windows_days]
        out += [(f"{entity}_events_{w}d", INT64) for w in self.windows_days]
        out += [(f"{entity}_{r}_{w}d", FLOAT64) for r in self.ratios for w in self.windows_days]
        return out + [(f"{entity}_days_since_last_event", FLOAT64)]

    def names(self, view: str) -> list[str]:
        return [name for name, _ in self.fields(view)]

    def columns(self, view: str) -> list[str]:
        """Every column of the view's table, in the order both engines write them."""
        return [ENTITY_OF[view], EVENT_TIMESTAMP, *self.names(view), PARTITION]

    def arrow_schema(self, view: str):
        import pyarrow as pa

        types = {INT64: pa.int64(), FLOAT64: pa.float64(), FLOAT32_LIST: pa.list_(pa.float32()),
                 STRING: pa.string(), STRING_LIST: pa.list_(pa.string()), FLOAT64_LIST: pa.list_(pa.float64())}
        return pa.schema([(ENTITY_OF[view], pa.string()), (EVENT_TIMESTAMP, pa.timestamp("us", tz="UTC")),
                          *[(name, types[dtype]) for name, dtype in self.fields(view)],
                          *([(PARTITION, pa.string())] if view in BATCH_VIEWS else [])])

    # ---- persistence: the resolved spec travels with the tables ----
    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureSpec:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @classmethod
    def read(cls, directory: str | Path) -> FeatureSpec:
        path = Path(directory) / SPEC_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no feature spec at {path}: run the feature job first "
                                    "(python run.py --pipeline features)")
        return cls.from_dict(json.loads(path.read_text()))

    def write(self, directory: str | Path) -> Path:
        path = Path(directory) / SPEC_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json())
        return path


def default_spec() -> FeatureSpec:
    """The spec the Feast repo declares before any job ran: the synthetic travel data's (view, click,
    booking; category and destination as on recsys.data.synthetic)."""
    from recsys.data.synthetic import CATEGORIES, DESTINATIONS, EVENTS

    return FeatureSpec(event_types=EVENTS, vocabularies={"category": tuple(sorted(CATEGORIES)),
                                                         "destination": tuple(sorted(d[0] for d in DESTINATIONS))})
