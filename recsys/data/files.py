"""The user's own data: interactions plus optional items and users files (CSV, TSV or Parquet).

A column mapping (contract name -> your column name, one mapping for all three files) renames the files'
columns to the contract (recsys.data.schema); `default_event_type` fills event_type when the interactions
have none ("rating" unless set: a ratings export; set it to None to require the column). Validation happens afterwards, in one place (recsys.data.validation), so
a bad file is rejected with the table, column and rows at fault before any training.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from recsys.data.schema import EVENT_TYPE, Dataset
from recsys.data.validation import DataValidationError

log = logging.getLogger(__name__)
READERS = {".csv": "csv", ".tsv": "tsv", ".txt": "tsv", ".parquet": "parquet", ".pq": "parquet"}


def read_table(path: str | Path, table: str) -> pd.DataFrame:
    """One file as a DataFrame of strings / numbers, by its suffix (.csv, .tsv, .parquet). Ids stay
    strings: "007" must not become 7."""
    path = Path(path)
    kind = READERS.get(path.suffix.lower())
    if kind is None:
        raise DataValidationError(table, None, f"cannot read {path.name}: use one of {sorted(READERS)}")
    if not path.is_file():
        raise FileNotFoundError(f"{table} file {path} does not exist")
    if kind == "parquet":
        return pd.read_parquet(path)
    try:
        return pd.read_csv(path, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False,
                           na_values=[""])
    except pd.errors.EmptyDataError:
        raise DataValidationError(table, None, f"{path.name} is empty (no header, no rows)") from None


def load_user_files(interactions: str | Path, items: str | Path | None = None, users: str | Path | None = None,
                    columns: Mapping[str, str] | None = None, default_event_type: str | None = "rating",
                    name: str = "files") -> Dataset:
    """Read and rename the files (not yet validated: `recsys.data.loader.load_dataset` validates)."""
    rename = {theirs: ours for ours, theirs in (columns or {}).items()}

    def read(path, table):
        return None if path is None else read_table(path, table).rename(columns=rename)

    inter = read(interactions, "interactions")
    if EVENT_TYPE not in inter.columns and default_event_type:
        log.info("%s has no %s column: every row is a %r", interactions, EVENT_TYPE, default_event_type)
        inter[EVENT_TYPE] = default_event_type
    return Dataset(inter, read(items, "items"), read(users, "users"), name=name)
