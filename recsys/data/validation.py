"""Gatekeeper between every data source and the rest of the system.

Every loader (synthetic, MovieLens, user files) ends with `validate_dataset`, so retrieval, ranking, serving
and evaluation can rely on the contract in `recsys.data.schema` without re-checking: string ids, UTC
timestamps, known event types, float values, interactions sorted by time. When a table breaks the contract
we raise `DataValidationError` naming the table, the column and example row positions (0-based positions
in the table *as given*, before any sorting) so the person who supplied the data can find the bad rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

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

_MAX_EXAMPLES = 5
# pandas datetime64[ns] covers 1677..2262; larger unix seconds would overflow inside pandas.
_MAX_UNIX_SECONDS = 9.2e9


class DataValidationError(ValueError):
    """A table breaks the data contract. `.table`, `.column` (None for table-level problems) and `.rows`
    (up to 5 example 0-based row positions in the input as given) say where."""

    def __init__(self, table: str, column: str | None, problem: str, rows: Iterable[int] = (),
                 values: Sequence | None = None):
        self.table = table
        self.column = column
        self.rows = [int(r) for r in list(rows)[:_MAX_EXAMPLES]]
        where = f"{table}.{column}" if column else table
        message = f"{where}: {problem}"
        if self.rows:
            message += f", e.g. rows {self.rows}"
            if values is not None:
                message += f" (values {list(values)[:_MAX_EXAMPLES]!r})"
        super().__init__(message)

    def __reduce__(self):  # keep the attributes when pickled (e.g. across pipeline step processes)
        return _rebuild_error, (self.table, self.column, str(self), self.rows)


def _rebuild_error(table, column, message, rows):
    err = DataValidationError.__new__(DataValidationError)
    ValueError.__init__(err, message)
    err.table, err.column, err.rows = table, column, list(rows)
    return err


def _fail_rows(table: str, column: str, mask: np.ndarray, problem: str, original: pd.Series) -> None:
    """Raise if any row is flagged in `mask`; `problem` completes "N rows ..." (plural verb)."""
    bad = np.flatnonzero(np.asarray(mask, dtype=bool))
    if bad.size:
        examples = bad[:_MAX_EXAMPLES]
        if bad.size == 1:  # "1 row has ...", "3 rows have ..."
            problem = "row " + (f"has{problem[4:]}" if problem.startswith("have ") else problem)
        else:
            problem = f"rows {problem}"
        raise DataValidationError(table, column, f"{bad.size} {problem}", examples,
                                  original.iloc[examples].tolist())


def _check_table(df: pd.DataFrame, table: str, required: Sequence[str]) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{table}: expected a pandas DataFrame, got {type(df).__name__}")
    if len(df) == 0:
        raise DataValidationError(table, None, "table is empty (0 rows)")
    for column in required:
        if column not in df.columns:
            raise DataValidationError(
                table, column, f"required column is missing (columns are {list(map(str, df.columns))})")
    # A shallow copy (reset_index would deep-copy 10M-row object columns): we only replace whole columns,
    # never write into the caller's arrays. RangeIndex: reported rows are positions in what the user gave.
    out = df.copy(deep=False)
    out.index = pd.RangeIndex(len(out))
    return out


def _as_str_ids(series: pd.Series, table: str, column: str, allow_null: bool = False) -> pd.Series:
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
        _fail_rows(table, column, blank, "have a missing or empty id", series)
    elif blank.any():
        out = out.where(~blank, None)
    return out


def _as_utc(series: pd.Series, table: str, column: str) -> pd.Series:
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
    _fail_rows(table, column, out.isna().to_numpy(), "have unparsable timestamps", series)
    return out


def _from_unix_seconds(series: pd.Series) -> pd.Series:
    seconds = pd.to_numeric(series, errors="coerce").astype("float64")
    seconds = seconds.where(np.isfinite(seconds) & (seconds.abs() < _MAX_UNIX_SECONDS))
    # Whole seconds go through int64 so large epochs keep exact precision.
    if seconds.notna().all() and np.all(np.mod(seconds.to_numpy(), 1) == 0):
        return pd.to_datetime(seconds.astype("int64"), unit="s", utc=True)
    return pd.to_datetime(seconds, unit="s", utc=True, errors="coerce")


def _as_event_types(series: pd.Series, event_types: Sequence[str], table: str) -> pd.Series:
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    names = np.array([str(u).strip().lower() for u in uniques] + [None], dtype=object)
    known = np.array([n in event_types for n in names[:-1]] + [False], dtype=bool)
    _fail_rows(table, EVENT_TYPE, ~known[codes], f"have unknown event types (known: {list(event_types)})",
               series)
    return pd.Series(names[codes], index=series.index, dtype=object)


def _as_float(series: pd.Series, table: str, column: str) -> pd.Series:
    """Numbers (or numeric strings) to float64; missing values stay NaN ("no value"), text is an error."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_object_dtype(series.dtype):
        out = series.astype("float64")
    else:
        out = pd.to_numeric(series, errors="coerce").astype("float64")
        _fail_rows(table, column, (out.isna() & series.notna()).to_numpy(), "have non-numeric values", series)
    _fail_rows(table, column, np.isinf(out.to_numpy()), "have infinite values", series)
    return out


def validate_interactions(df: pd.DataFrame, event_types: Sequence[str] = EVENT_TYPES) -> pd.DataFrame:
    """Coerce an interactions table to the contract and return it sorted by timestamp (stable) with a
    fresh RangeIndex. Extra columns are kept untouched."""
    table = "interactions"
    out = _check_table(df, table, INTERACTION_REQUIRED)
    out[USER_ID] = _as_str_ids(out[USER_ID], table, USER_ID)
    out[ITEM_ID] = _as_str_ids(out[ITEM_ID], table, ITEM_ID)
    out[TIMESTAMP] = _as_utc(out[TIMESTAMP], table, TIMESTAMP)
    out[EVENT_TYPE] = _as_event_types(out[EVENT_TYPE], tuple(event_types), table)
    if VALUE in out.columns:
        out[VALUE] = _as_float(out[VALUE], table, VALUE)
    if SESSION_ID in out.columns:
        out[SESSION_ID] = _as_str_ids(out[SESSION_ID], table, SESSION_ID, allow_null=True)
    if not out[TIMESTAMP].is_monotonic_increasing:  # skip the sort for already ordered data (synthetic)
        out = out.sort_values(TIMESTAMP, kind="stable")
        out.index = pd.RangeIndex(len(out))
    return out


def _validate_entities(df: pd.DataFrame, table: str, id_column: str) -> pd.DataFrame:
    out = _check_table(df, table, (id_column,))
    out[id_column] = _as_str_ids(out[id_column], table, id_column)
    # keep="first": the first occurrence is fine, every repeat after it is reported.
    _fail_rows(table, id_column, out[id_column].duplicated(keep="first").to_numpy(),
               f"repeat an {id_column} that appears earlier (duplicate rows)", out[id_column])
    return out


def validate_items(df: pd.DataFrame) -> pd.DataFrame:
    """Item attribute table: unique, non-null string `item_id`; other columns kept as given."""
    return _validate_entities(df, "items", ITEM_ID)


def validate_users(df: pd.DataFrame) -> pd.DataFrame:
    """User attribute table: unique, non-null string `user_id`; other columns kept as given."""
    return _validate_entities(df, "users", USER_ID)


def _empty(id_column: str) -> pd.DataFrame:
    return pd.DataFrame({id_column: pd.Series(dtype=object)})


def validate_dataset(ds: Dataset, event_types: Sequence[str] = EVENT_TYPES) -> Dataset:
    """Validate all three tables and their link. Items/users tables are optional: None or 0 rows means
    "no attributes" (an empty table with just the id column). A non-empty items table must cover every
    interacted item, or item features would silently be missing downstream."""
    items = _empty(ITEM_ID) if ds.items is None or len(ds.items) == 0 else validate_items(ds.items)
    users = _empty(USER_ID) if ds.users is None or len(ds.users) == 0 else validate_users(ds.users)
    interactions = validate_interactions(ds.interactions, event_types)
    if len(items):
        unknown = ~interactions[ITEM_ID].isin(items[ITEM_ID]).to_numpy()
        if unknown.any():
            # Report positions in the caller's table, not in our time-sorted copy.
            original_ids = _as_str_ids(ds.interactions[ITEM_ID].reset_index(drop=True), "interactions", ITEM_ID)
            _fail_rows("interactions", ITEM_ID, ~original_ids.isin(items[ITEM_ID]).to_numpy(),
                       "name items that are absent from the items table", original_ids)
    return Dataset(interactions=interactions, items=items, users=users, name=ds.name)
