"""Gatekeeper between every data source and the rest of the system.

Every loader (synthetic, MovieLens, user files) ends with `validate_dataset`, so retrieval, ranking, serving
and evaluation can rely on the contract in `recsys.data.schema` without re-checking: string ids, UTC
timestamps, known event types, float values, interactions sorted by time. When a table breaks the contract
we raise `DataValidationError` listing every problem found (not just the first), each naming the table, the
column, example row positions (0-based positions in the table *as given*, before any sorting) and their
values, so the person who supplied the data can fix them all in one go.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from recsys.data.schema import (
    EVENT_TYPE,
    EVENT_TYPES,
    INTERACTION_REQUIRED,
    ITEM_ID,
    SESSION_ID,
    TIMESTAMP,
    USER_ID,
    VALUE,
    Dataset,
)
from recsys.errors import UserError

_MAX_EXAMPLES = 5
# pandas datetime64[ns] covers 1677..2262; larger unix seconds would overflow inside pandas.
_MAX_UNIX_SECONDS = 9.2e9


class Problem(NamedTuple):
    """One contract violation: where (table, column: None for the table itself), what, example rows and
    their values as given."""

    table: str
    column: str | None
    problem: str
    rows: tuple[int, ...] = ()
    values: tuple | None = None

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        message = f"{where}: {self.problem}"
        if self.rows:
            message += f", e.g. rows {list(self.rows)}"
            if self.values is not None:
                message += f" (values {list(self.values)!r})"
        return message


class DataValidationError(ValueError, UserError):
    """Tables break the data contract. `.problems` lists every violation found (one line each in the
    message); `.table`, `.column` (None for table-level problems) and `.rows` (up to 5 example 0-based row
    positions in the input as given) say where the first one is."""

    def __init__(self, table: str = "", column: str | None = None, problem: str = "", rows: Iterable[int] = (),
                 values: Sequence | None = None, problems: Sequence[Problem] | None = None):
        if problems is None:
            rows = tuple(int(r) for r in list(rows)[:_MAX_EXAMPLES])
            problems = [Problem(table, column, problem, rows,
                                tuple(list(values)[:_MAX_EXAMPLES]) if values is not None and rows else None)]
        self.problems = list(problems)
        first = self.problems[0]
        self.table, self.column, self.rows = first.table, first.column, list(first.rows)
        if len(self.problems) == 1:
            message = str(first)
        else:
            message = f"{len(self.problems)} problems in the data:\n" + "\n".join(f"  {p}" for p in self.problems)
        super().__init__(message)

    def __reduce__(self):  # keep the attributes when pickled (e.g. across pipeline step processes)
        return _rebuild_error, (tuple(tuple(p) for p in self.problems),)


def _rebuild_error(problems):
    return DataValidationError(problems=[Problem(*p) for p in problems])


class _Report:
    """Collects the problems of one validation, so the user sees all of them at once, not one per run."""

    def __init__(self):
        self.problems: list[Problem] = []

    def add(self, table: str, column: str | None, problem: str) -> None:
        self.problems.append(Problem(table, column, problem))

    def rows(self, table: str, column: str, mask: np.ndarray, problem: str, original: pd.Series) -> bool:
        """Record the rows flagged in `mask`; `problem` completes "N rows ..." (plural verb). True if any."""
        bad = np.flatnonzero(np.asarray(mask, dtype=bool))
        if not bad.size:
            return False
        examples = bad[:_MAX_EXAMPLES]
        if bad.size == 1:  # "1 row has ...", "3 rows have ..."; "1 row names ...", "2 rows name ..."
            verb, rest = problem.split(" ", 1)
            problem = f"row {'has' if verb == 'have' else verb + 's'} {rest}"
        else:
            problem = f"rows {problem}"
        self.problems.append(Problem(table, column, f"{bad.size} {problem}", tuple(int(r) for r in examples),
                                     tuple(original.iloc[examples].tolist())))
        return True

    def raise_if_any(self) -> None:
        if self.problems:
            raise DataValidationError(problems=self.problems)


def _check_table(df: pd.DataFrame, table: str, required: Sequence[str], report: _Report) -> pd.DataFrame | None:
    """A shallow copy with a RangeIndex, or None when the table is empty (nothing else to check)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{table}: expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        report.add(table, None, "table is empty (0 rows)")
        return None
    for column in required:
        if column not in df.columns:
            report.add(table, column, f"required column is missing (columns are {list(map(str, df.columns))})")
    # A shallow copy (reset_index would deep-copy 10M-row object columns): we only replace whole columns,
    # never write into the caller's arrays. RangeIndex: reported rows are positions in what the user gave.
    out = df.copy(deep=False)
    out.index = pd.RangeIndex(len(out))
    return out


def _as_str_ids(series: pd.Series, table: str, column: str, report: _Report, allow_null: bool = False) -> pd.Series:
    """Coerce an id column to Python str (object dtype); 5 -> "5", 5.0 -> "5"."""
    blank = series.isna().to_numpy()
    if pd.api.types.infer_dtype(series, skipna=False) == "string":
        # Fast path for the common case (already strings): no per-value conversion, shared objects kept.
        blank = blank | (series == "").fillna(False).to_numpy(dtype=bool)
        out = series.astype(object, copy=False)  # never mutated, so no need to copy 10M pointers
    else:
        if pd.api.types.is_float_dtype(series.dtype):
            finite = series.dropna()
            if len(finite) and np.all(np.mod(finite.to_numpy(), 1) == 0):
                # A float id column is usually an int column that once held NaN; "5.0" would not match "5".
                series = series.astype("Int64")
        # Convert each distinct value once: fast at 10M rows, and equal ids share one str object.
        codes, uniques = pd.factorize(series, use_na_sentinel=True)
        names = np.array([str(u) for u in uniques] + [None], dtype=object)
        out = pd.Series(names[codes], index=series.index, dtype=object)  # code -1 picks the trailing None
        empty = np.array([n == "" for n in names[:-1]] + [False], dtype=bool)
        blank = blank | empty[codes]
    if not allow_null:
        report.rows(table, column, blank, "have a missing or empty id", series)
    elif blank.any():
        out = out.where(~blank, None)
    return out


def _as_utc(series: pd.Series, table: str, column: str, report: _Report) -> pd.Series:
    """Coerce to datetime64[ns, UTC] from datetimes (naive ones are taken as UTC), ISO strings or numeric
    unix seconds (also as strings)."""
    if series.dtype == "datetime64[ns, UTC]":
        out = series  # already in contract form (e.g. the synthetic generator): no copy
    elif isinstance(series.dtype, pd.DatetimeTZDtype):
        out = series.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(series.dtype):
        out = series.dt.tz_localize("UTC")
    elif pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        out = _from_unix_seconds(series)
    else:
        out = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
        retry = out.isna() & series.notna()
        if retry.any():  # numbers inside an object / string column, e.g. "881250949"
            out = out.where(~retry, _from_unix_seconds(pd.to_numeric(series.where(retry), errors="coerce")))
    out = out.astype("datetime64[ns, UTC]", copy=False)
    report.rows(table, column, out.isna().to_numpy(), "have unparsable timestamps", series)
    return out


def _from_unix_seconds(series: pd.Series) -> pd.Series:
    seconds = pd.to_numeric(series, errors="coerce").astype("float64")
    seconds = seconds.where(np.isfinite(seconds) & (seconds.abs() < _MAX_UNIX_SECONDS))
    # Whole seconds go through int64 so large epochs keep exact precision.
    if seconds.notna().all() and np.all(np.mod(seconds.to_numpy(), 1) == 0):
        return pd.to_datetime(seconds.astype("int64"), unit="s", utc=True)
    return pd.to_datetime(seconds, unit="s", utc=True, errors="coerce")


def _as_event_types(series: pd.Series, event_types: Sequence[str], table: str, report: _Report) -> pd.Series:
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    names = np.array([str(u).strip().lower() for u in uniques] + [None], dtype=object)
    known = np.array([n in event_types for n in names[:-1]] + [False], dtype=bool)
    report.rows(table, EVENT_TYPE, ~known[codes], f"have unknown event types (known: {list(event_types)})", series)
    return pd.Series(names[codes], index=series.index, dtype=object)


def _as_float(series: pd.Series, table: str, column: str, report: _Report) -> pd.Series:
    """Numbers (or numeric strings) to float64; missing values stay NaN ("no value"), text is an error."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype):
        out = series.astype("float64")
    else:
        out = pd.to_numeric(series, errors="coerce").astype("float64")
        report.rows(table, column, (out.isna() & series.notna()).to_numpy(), "have non-numeric values", series)
    report.rows(table, column, np.isinf(out.to_numpy()), "have infinite values", series)
    return out


def _interactions(df: pd.DataFrame, event_types: Sequence[str], report: _Report) -> pd.DataFrame | None:
    table = "interactions"
    out = _check_table(df, table, INTERACTION_REQUIRED, report)
    if out is None:
        return None
    coerce = {USER_ID: lambda s: _as_str_ids(s, table, USER_ID, report),
              ITEM_ID: lambda s: _as_str_ids(s, table, ITEM_ID, report),
              TIMESTAMP: lambda s: _as_utc(s, table, TIMESTAMP, report),
              EVENT_TYPE: lambda s: _as_event_types(s, tuple(event_types), table, report),
              VALUE: lambda s: _as_float(s, table, VALUE, report),
              SESSION_ID: lambda s: _as_str_ids(s, table, SESSION_ID, report, allow_null=True)}
    for column, convert in coerce.items():
        if column in out.columns:
            out[column] = convert(out[column])
    return out


def validate_interactions(df: pd.DataFrame, event_types: Sequence[str] = EVENT_TYPES) -> pd.DataFrame:
    """Coerce an interactions table to the contract and return it sorted by timestamp (stable) with a
    fresh RangeIndex. Extra columns are kept untouched."""
    report = _Report()
    out = _interactions(df, event_types, report)
    report.raise_if_any()
    return _sorted_by_time(out)


def _sorted_by_time(out: pd.DataFrame) -> pd.DataFrame:
    if not out[TIMESTAMP].is_monotonic_increasing:  # skip the sort for already ordered data (synthetic)
        out = out.sort_values(TIMESTAMP, kind="stable")
        out.index = pd.RangeIndex(len(out))
    return out


def _entities(df: pd.DataFrame, table: str, id_column: str, report: _Report) -> pd.DataFrame | None:
    out = _check_table(df, table, (id_column,), report)
    if out is None or id_column not in out.columns:
        return None
    out[id_column] = _as_str_ids(out[id_column], table, id_column, report)
    # keep="first": the first occurrence is fine, every repeat after it is reported.
    report.rows(table, id_column, out[id_column].duplicated(keep="first").to_numpy(),
                f"repeat an {id_column} that appears earlier (duplicate rows)", out[id_column])
    return out


def validate_items(df: pd.DataFrame) -> pd.DataFrame:
    """Item attribute table: unique, non-null string `item_id`; other columns kept as given."""
    report = _Report()
    out = _entities(df, "items", ITEM_ID, report)
    report.raise_if_any()
    return out


def validate_users(df: pd.DataFrame) -> pd.DataFrame:
    """User attribute table: unique, non-null string `user_id`; other columns kept as given."""
    report = _Report()
    out = _entities(df, "users", USER_ID, report)
    report.raise_if_any()
    return out


def _empty(id_column: str) -> pd.DataFrame:
    return pd.DataFrame({id_column: pd.Series(dtype=object)})


def validate_dataset(ds: Dataset, event_types: Sequence[str] = EVENT_TYPES) -> Dataset:
    """Validate all three tables and their link, reporting every problem of every table at once. Items/users
    tables are optional: None or 0 rows means "no attributes" (an empty table with just the id column). A
    non-empty items table must cover every interacted item, or item features would silently be missing
    downstream."""
    report = _Report()
    given_items = ds.items is not None and len(ds.items) > 0
    items = _entities(ds.items, "items", ITEM_ID, report) if given_items else _empty(ITEM_ID)
    users = (_entities(ds.users, "users", USER_ID, report) if ds.users is not None and len(ds.users)
             else _empty(USER_ID))
    interactions = _interactions(ds.interactions, event_types, report)
    if given_items and items is not None and interactions is not None and ITEM_ID in interactions.columns:
        # Positions are those of the caller's table (no sorting has happened yet).
        known = set(items[ITEM_ID].dropna())
        unknown = ~interactions[ITEM_ID].isin(known).to_numpy() & interactions[ITEM_ID].notna().to_numpy()
        report.rows("interactions", ITEM_ID, unknown, "name items that are absent from the items table",
                    interactions[ITEM_ID])
    report.raise_if_any()
    return Dataset(interactions=_sorted_by_time(interactions), items=items, users=users, name=ds.name)
