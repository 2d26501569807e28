"""The batch views as SQL: one definition of the feature tables, run by DuckDB on one machine
(recsys.features.batch) and by Spark SQL on a cluster (recsys.features.spark_job).

The meaning of every column is in recsys.features.definitions: a row stamped T covers the events in
[T - W days, T), and rows exist for every T at which the entity had an event in the longest window. The
statements compute exactly that without expanding events (or daily aggregates) per snapshot:

1. `daily`: one row per (entity, UTC day): counts per event type and in total, the last event time, the
   user's numeric sums and counts, and the user's events per attribute value (an "a|b" item counts for
   both values).
2. Window sums per segment. A day enters every window at T = day + 1 and leaves window W at
   T = day + 1 + W; between two consecutive such marks every window sum of the entity is constant: a
   segment [pos, end]. Segments are ~5x fewer than snapshot rows. Two spellings of the same sums, each
   engine running the one it is fast at (measured on the benchmark's data: each is ~2x slower on the
   other engine); the tests hold both to a brute-force reference and to each other:
   - DuckDB, `prefix` -> `segments` -> `lookups` -> `windows`: running sums per entity over its days;
     per segment the index of the latest day <= pos - 1 - W (one ordered pass, an as-of lookup); a
     window's sum is the difference of two prefix rows (hash joins, no window aggregate per column).
   - Spark, `running_windows`: running sums over the marks themselves (+ at entry, - at exit of W) in
     one ordered pass per entity, no join.
   Integers are exact either way; float sums (the price's) differ from a direct sum by rounding only.
   Segments whose longest window holds no event are dropped: those snapshots have no row.
3. `features(views)`: the views' columns per segment in the spec's names and dtypes (counts, ratios,
   means, shares as float32 lists). recsys.features.snapshots expands a segment into its snapshots
   T = pos .. end and adds what depends on T (event_timestamp, recency, the date partition).

`Dialect` spells the handful of functions the two engines name differently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from recsys.features.definitions import (
    ITEM_KEY,
    ITEM_POPULARITY,
    SNAPSHOT_SECONDS,
    USER_ACTIVITY,
    USER_AFFINITY,
    USER_KEY,
    FeatureSpec,
)

DAY_US = SNAPSHOT_SECONDS * 1_000_000
RECENCY = "days_since_last_event"  # <entity>_days_since_last_event: the one column that varies inside a segment


@dataclass(frozen=True)
class Dialect:
    """What DuckDB and Spark SQL spell differently; everything else in the statements is common SQL."""

    name: str
    ident: Callable[[str], str]  # a quoted identifier
    string: Callable[[str], str]  # a string literal
    epoch_us: Callable[[str], str]  # a UTC timestamp column -> microseconds since the epoch
    floor_div: Callable[[str, int], str]  # integer division rounding down (also for times before 1970)
    array: str  # list constructor
    explode: str  # a list -> one row per element
    contains: str  # list membership
    split_trim: Callable[[str], str]  # "a|b" -> list of trimmed values


DUCKDB = Dialect(
    name="duckdb",
    ident=lambda name: '"' + name.replace('"', '""') + '"',
    string=lambda value: "'" + value.replace("'", "''") + "'",
    epoch_us=lambda column: f"epoch_us(CAST({column} AS TIMESTAMPTZ))",
    floor_div=lambda a, b: f"((({a}) - ((({a}) % {b}) + {b}) % {b}) // {b})",
    array="list_value", explode="unnest", contains="list_contains",
    split_trim=lambda column: f"list_transform(string_split(CAST({column} AS STRING), '|'), lambda v: trim(v))",
)

SPARK = Dialect(
    name="spark",
    ident=lambda name: "`" + name.replace("`", "``") + "`",
    string=lambda value: "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'",
    epoch_us=lambda column: f"unix_micros({column})",
    floor_div=lambda a, b: f"((({a}) - pmod({a}, {b})) div {b})",
    array="array", explode="explode", contains="array_contains",
    split_trim=lambda column: f"transform(split(CAST({column} AS STRING), '[|]'), v -> trim(v))",
)


class FeatureSQL:
    """The statements for one resolved spec, one dialect and one last snapshot (a day number).

    Each method returns a SELECT over named relations (the previous stages' tables or views), so an engine
    runs them as temp tables (DuckDB) or temp views (Spark) in this order:
    events, items -> daily(entity) -> prefix -> segments -> lookups -> windows -> features(view)
    (Spark: daily -> running_windows -> features).
    """

    def __init__(self, spec: FeatureSpec, dialect: Dialect, last_snapshot: int):
        if not spec.resolved:
            raise ValueError("resolve the FeatureSpec on the data first (FeatureSpec.resolve)")
        self.spec, self.d, self.last = spec, dialect, int(last_snapshot)
        self.shifts = (0, *spec.windows_days)  # segment marks: day + 1 + shift

    # ---- inputs ----
    def events(self, source: str) -> str:
        """Interactions -> (user_id, item_id, event_type, us, day)."""
        q = self.d.ident
        inner = (f"SELECT CAST({q(USER_KEY)} AS STRING) AS user_id, CAST({q(ITEM_KEY)} AS STRING) AS item_id, "
                 f"CAST({q('event_type')} AS STRING) AS event_type, {self.d.epoch_us(q('timestamp'))} AS us "
                 f"FROM {source}")
        return f"SELECT user_id, item_id, event_type, us, {self.d.floor_div('us', DAY_US)} AS day FROM ({inner}) t"

    def items(self, source: str) -> str:
        """Items -> item_id, x<i> per numeric column (non-numbers and NaN -> NULL), a<i>_<j> = 1 when the item
        carries value j of attribute i."""
        numeric = [f"CASE WHEN isnan(TRY_CAST({self._col(c)} AS DOUBLE)) THEN NULL "
                   f"ELSE TRY_CAST({self._col(c)} AS DOUBLE) END AS x{i}" for i, c in enumerate(self.spec.numeric)]
        lists = [f"{self.d.split_trim(self._col(c))} AS l{i}" for i, c in enumerate(self.spec.attributes)]
        inner = ", ".join([f"CAST({self._col(ITEM_KEY)} AS STRING) AS item_id", *numeric, *lists])
        flags = [f"CASE WHEN {self.d.contains}(l{i}, {self.d.string(v)}) THEN 1 ELSE 0 END AS a{i}_{j}"
                 for i, c in enumerate(self.spec.attributes) for j, v in enumerate(self.spec.vocabularies[c])]
        outer = ", ".join(["item_id", *(f"x{i}" for i in range(len(self.spec.numeric))), *flags])
        return f"SELECT {outer} FROM (SELECT {inner} FROM {source}) t"

    def duplicate_items(self, items: str) -> str:
        return f"SELECT item_id FROM {items} GROUP BY item_id HAVING COUNT(*) > 1 ORDER BY item_id LIMIT 5"

    # ---- the per-entity stages ----
    def counts(self, entity: str) -> list[str]:
        """The integer columns summed over windows: e<i> per event type, n (all), then the user's c<i>
        (events with numeric column i known) and a<i>_<j>."""
        out = [f"e{i}" for i in range(len(self.spec.event_types))] + ["n"]
        if entity == USER_KEY:
            out += [f"c{i}" for i in range(len(self.spec.numeric))]
            out += [f"a{i}_{j}" for i, c in enumerate(self.spec.attributes)
                    for j in range(len(self.spec.vocabularies[c]))]
        return out

    def sums(self, entity: str) -> list[str]:
        """The float columns summed over windows: s<i>, the user's sum of numeric column i."""
        return [f"s{i}" for i in range(len(self.spec.numeric))] if entity == USER_KEY else []

    def daily(self, entity: str, events: str, items: str, where: str = "") -> str:
        key = USER_KEY if entity == USER_KEY else ITEM_KEY
        aggs = [f"CAST(SUM(CASE WHEN e.event_type = {self.d.string(t)} THEN 1 ELSE 0 END) AS BIGINT) AS e{i}"
                for i, t in enumerate(self.spec.event_types)]
        aggs += ["COUNT(*) AS n", "MAX(e.us) AS last_us"]
        source = f"{events} e"
        if entity == USER_KEY and (self.spec.numeric or self.spec.attributes):
            source += f" LEFT JOIN {items} i ON e.item_id = i.item_id"
            aggs += [f"SUM(i.x{i}) AS s{i}, COUNT(i.x{i}) AS c{i}" for i in range(len(self.spec.numeric))]
            aggs += [f"CAST(SUM(i.{c}) AS BIGINT) AS {c}" for c in self.counts(entity) if c.startswith("a")]
        condition = f"e.day < {self.last}" + (f" AND ({where})" if where else "")
        return (f"SELECT e.{key} AS k, e.day AS day, {', '.join(aggs)} FROM {source} "
                f"WHERE {condition} GROUP BY e.{key}, e.day")

    def prefix(self, entity: str, daily: str) -> str:
        running = [f"CAST(SUM(COALESCE({c}, 0)) OVER w AS BIGINT) AS {c}" for c in self.counts(entity)]
        running += [f"SUM(COALESCE({c}, 0.0)) OVER w AS {c}" for c in self.sums(entity)]
        return (f"SELECT k, day, last_us, ROW_NUMBER() OVER w AS idx, {', '.join(running)} FROM {daily} "
                "WINDOW w AS (PARTITION BY k ORDER BY day ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")

    def _shift_rows(self, relation: str, columns: str) -> str:
        shifts = f"{self.d.array}({', '.join(map(str, self.shifts))})"
        return f"SELECT {columns}, {self.d.explode}({shifts}) AS shift FROM {relation}"

    def segments(self, prefix: str) -> str:
        marks = self._shift_rows(prefix, "k, day")
        return ("SELECT k, pos, LEAD(pos) OVER (PARTITION BY k ORDER BY pos) AS next_pos FROM "
                f"(SELECT DISTINCT k, day + 1 + shift AS pos FROM ({marks}) m WHERE day + 1 + shift <= {self.last}) p")

    def lookups(self, prefix: str, segments: str) -> str:
        """Per segment, i<shift> = idx of the entity's latest day <= pos - 1 - shift (NULL: none): days sort
        before lookups at the same x, so a day equal to x counts."""
        days = (f"SELECT k, day AS x, 0 AS src, idx, CAST(NULL AS BIGINT) AS pos, CAST(NULL AS BIGINT) AS next_pos, "
                f"CAST(NULL AS INT) AS shift FROM {prefix}")
        asks = (f"SELECT k, pos - 1 - shift AS x, 1 AS src, CAST(NULL AS BIGINT) AS idx, pos, next_pos, shift "
                f"FROM ({self._shift_rows(segments, 'k, pos, next_pos')}) s")
        latest = ("SELECT k, pos, next_pos, shift, src, MAX(idx) OVER (PARTITION BY k ORDER BY x, src "
                  f"ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS idx FROM ({days} UNION ALL {asks}) u")
        pivot = ", ".join(f"MAX(CASE WHEN shift = {s} THEN idx END) AS i{s}" for s in self.shifts)
        return f"SELECT k, pos, next_pos, {pivot} FROM ({latest}) t WHERE src = 1 GROUP BY k, pos, next_pos"

    def running_windows(self, entity: str, daily: str, views) -> str:
        """The same relation as `windows`, for the columns `views` need, as running sums over the marks: a day
        adds its values to every window at T = day + 1 and takes them out of window W at day + 1 + W. One
        ordered pass per entity, no join: Spark's fast path (window aggregates are DuckDB's slow one). RANGE
        frames give the rows of one mark position equal sums; one row per position is kept."""
        counts, sums = self.counts(entity), self.sums(entity)
        wanted = set().union(*(self._needs(view) for view in views))
        columns = [c for c in counts + sums if c in wanted]
        marks = self._shift_rows(daily, f"k, day, last_us, {', '.join(columns)}")
        zero = {c: "0.0" if c in sums else "0" for c in columns}
        running = [f"SUM(CASE WHEN shift = 0 THEN COALESCE({c}, {zero[c]}) WHEN shift = {w} THEN -COALESCE({c}, {zero[c]}) "
                   f"ELSE {zero[c]} END) OVER w AS {c}_{w}" for c in columns for w in self.spec.windows_days]
        ordered = (f"SELECT k, pos, LEAD(pos) OVER (PARTITION BY k ORDER BY pos) AS next_pos, MAX(last_us) OVER w AS last_us, "
                   f"{', '.join(running)} FROM (SELECT *, day + 1 + shift AS pos FROM ({marks}) m "
                   f"WHERE day + 1 + shift <= {self.last}) p "
                   "WINDOW w AS (PARTITION BY k ORDER BY pos RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)")
        return (f"SELECT k, pos, COALESCE(next_pos - 1, {self.last}) AS end_, last_us, "
                f"{', '.join(f'{c}_{w}' for c in columns for w in self.spec.windows_days)} FROM ({ordered}) r "
                f"WHERE (next_pos IS NULL OR next_pos > pos) AND n_{self.spec.max_window} > 0")

    def _needs(self, view: str) -> set[str]:
        """The summed columns a view's features read."""
        events = {f"e{i}" for i in range(len(self.spec.event_types))} | {"n"}
        if view == USER_AFFINITY:
            return {"n"} | {c for c in self.counts(USER_KEY) if c.startswith("a")}
        if view == USER_ACTIVITY:
            return events | {c for c in self.counts(USER_KEY) + self.sums(USER_KEY) if c[0] in "cs"}
        return events

    def windows(self, entity: str, prefix: str, lookups: str) -> str:
        """Per segment: [pos, end_], the last event time before it, and <column>_<W> for every summed column."""
        joins = f"{lookups} l JOIN {prefix} p0 ON p0.k = l.k AND p0.idx = l.i0"
        joins += "".join(f" LEFT JOIN {prefix} p{w} ON p{w}.k = l.k AND p{w}.idx = l.i{w}"
                         for w in self.spec.windows_days)
        diffs = [f"p0.{c} - COALESCE(p{w}.{c}, 0) AS {c}_{w}" for c in self.counts(entity)
                 for w in self.spec.windows_days]
        diffs += [f"p0.{c} - COALESCE(p{w}.{c}, 0.0) AS {c}_{w}" for c in self.sums(entity)
                  for w in self.spec.windows_days]
        longest = self.spec.max_window
        return (f"SELECT l.k AS k, l.pos AS pos, COALESCE(l.next_pos - 1, {self.last}) AS end_, "
                f"p0.last_us AS last_us, {', '.join(diffs)} FROM {joins} "
                f"WHERE p0.n - COALESCE(p{longest}.n, 0) > 0")

    # ---- the views ----
    def feature_exprs(self, view: str) -> dict[str, str]:
        """{column name: SQL over the windows relation} for every feature of `view` but recency."""
        spec, out = self.spec, {}
        if view == USER_AFFINITY:
            for i, column in enumerate(spec.attributes):
                for w in spec.windows_days:
                    shares = ", ".join(f"CAST(CAST(a{i}_{j}_{w} AS DOUBLE) / CAST(n_{w} AS DOUBLE) AS FLOAT)"
                                       for j in range(len(spec.vocabularies[column])))
                    out[f"user_{column}_share_{w}d"] = f"CASE WHEN n_{w} > 0 THEN {self.d.array}({shares}) END"
            return out
        entity = "user" if view == USER_ACTIVITY else "item"
        code = {t: i for i, t in enumerate(spec.event_types)}
        for t, i in code.items():
            for w in spec.windows_days:
                out[f"{entity}_{t}_{w}d"] = f"CAST(e{i}_{w} AS BIGINT)"
        for w in spec.windows_days:
            out[f"{entity}_events_{w}d"] = f"CAST(n_{w} AS BIGINT)"
        for name, (num, den) in spec.ratios.items():
            for w in spec.windows_days:
                out[f"{entity}_{name}_{w}d"] = _ratio(f"e{code[num]}_{w}", f"e{code[den]}_{w}")
        if view == USER_ACTIVITY:
            for i, column in enumerate(spec.numeric):
                for w in spec.windows_days:
                    out[f"user_{column}_mean_{w}d"] = _ratio(f"s{i}_{w}", f"c{i}_{w}")
        return out

    def features(self, views, windows: str) -> str:
        """Per segment: k, pos, end_, last_us and the columns of `views` (one entity's), recency excepted."""
        columns = []
        for view in views:
            exprs = self.feature_exprs(view)
            columns += [f"{exprs[name]} AS {self.d.ident(name)}" for name in self.spec.names(view) if name in exprs]
        return f"SELECT {', '.join(['k', 'pos', 'end_', 'last_us', *columns])} FROM {windows}"

    def _col(self, name: str) -> str:
        return self.d.ident(name)


def _ratio(num: str, den: str) -> str:
    """num / den as a double, NULL when the denominator is 0."""
    return f"CASE WHEN {den} > 0 THEN CAST({num} AS DOUBLE) / CAST({den} AS DOUBLE) END"


def snapshot_range(duplicated_items, lo, hi, n, last_snapshot: int | None) -> tuple[int, int]:
    """The engines' input checks on what their queries returned (`duplicated_items`: repeated item ids;
    `lo`, `hi`, `n`: the events' first and last day and count) and the (first, last) snapshot days."""
    if duplicated_items:
        raise ValueError(f"items: item_id must be unique; repeated ids include {list(duplicated_items)}")
    if not n:
        raise ValueError("the feature job needs at least one interaction")
    first, last = int(lo) + 1, (int(hi) + 1 if last_snapshot is None else int(last_snapshot))
    if last < first:
        from recsys.features.snapshots import snapshot_date  # it imports this module

        raise ValueError(f"the last snapshot ({snapshot_date(last)}) is before the end of the first event's day "
                         f"({snapshot_date(first)}): no snapshot to compute")
    return first, last


ENTITY_VIEWS = {USER_KEY: (USER_ACTIVITY, USER_AFFINITY), ITEM_KEY: (ITEM_POPULARITY,)}
