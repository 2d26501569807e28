"""The feature job on DuckDB: the one-machine engine, in-process, with bounded memory.

It runs recsys.features.sql's statements (the ones recsys.features.spark_job runs on Spark) and writes the
same tables. Users and items are split into buckets by a hash of their id, and each bucket is computed on
its own, so memory follows the bucket (`events_per_bucket`), not the log; DuckDB spills to
`temp_directory` beyond `memory_limit`. A bucket's segments come back as Arrow and
recsys.features.snapshots expands them into their snapshot rows, one Parquet file per date and bucket:
`<view>/date=YYYY-MM-DD/part-<bucket>.parquet`, the layout the Feast repo's file sources read.

    run_duckdb_job(interactions, items, spec, "data/features", settings={"memory_limit": "2GB"})
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from recsys.features.definitions import FeatureSpec
from recsys.features.offline import clear_leftovers, finish, publish, staging_dir
from recsys.features.snapshots import file_schema, write_snapshots
from recsys.features.sql import DAY_US, DUCKDB, ENTITY_VIEWS, FeatureSQL, snapshot_range

log = logging.getLogger(__name__)
DEFAULTS = {
    "threads": os.cpu_count() or 1,  # DuckDB's threads, and as many Parquet writers
    "memory_limit": "2GB",  # DuckDB's buffer pool; it spills to temp_directory beyond this
    "events_per_bucket": 2_000_000,  # users (items) per bucket ~ this many events: bounds memory per step
    "temp_directory": None,  # None: a scratch directory in the output directory, removed after the run
}


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


def run_duckdb_job(interactions, items, spec: FeatureSpec, out_dir: str | Path, last_snapshot: int | None = None,
                   settings: dict | None = None) -> dict:
    """Compute the batch views and write them (Parquet partitioned by date) plus the spec. `interactions` /
    `items` are pandas frames or Parquet paths. Returns {"rows": {view: n}, "first_snapshot": day,
    "last_snapshot": day, "buckets": n} (days since the epoch)."""
    import duckdb

    settings, start = {**DEFAULTS, **(settings or {})}, time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_leftovers(out_dir)
    scratch = Path(settings["temp_directory"] or tempfile.mkdtemp(prefix=".duckdb-", dir=out_dir))
    con = duckdb.connect()
    try:
        con.execute(f"SET threads = {int(settings['threads'])}")
        con.execute(f"SET memory_limit = '{settings['memory_limit']}'")
        con.execute(f"SET temp_directory = '{scratch}'")
        con.execute("SET preserve_insertion_order = false")  # no row order is promised: lets DuckDB stream
        con.execute("SET TimeZone = 'UTC'")
        first, last, n_events = _load(con, interactions, items, spec, last_snapshot)
        sql = FeatureSQL(spec, DUCKDB, last)
        buckets = max(1, -(-n_events // int(settings["events_per_bucket"])))
        staged = {view: staging_dir(out_dir, view) for views in ENTITY_VIEWS.values() for view in views}
        schemas, rows = {view: file_schema(spec, view) for view in staged}, dict.fromkeys(staged, 0)
        with ThreadPoolExecutor(max_workers=int(settings["threads"])) as writers:
            for entity, views in ENTITY_VIEWS.items():
                for bucket in range(buckets):
                    segments = _segments(con, sql, entity, views, buckets, bucket)
                    for view in views:
                        rows[view] += write_snapshots(segments, *schemas[view], staged[view], str(bucket), writers)
                    if buckets > 1:  # a long job shows where it is
                        log.info("feature job (duckdb): %s bucket %d/%d written (%.0f s)", entity, bucket + 1,
                                 buckets, time.perf_counter() - start)
        for view, path in staged.items():
            publish(out_dir, view, path)
        finish(out_dir, spec)
        return {"rows": rows, "first_snapshot": first, "last_snapshot": last, "buckets": buckets}
    finally:
        con.close()
        if not settings["temp_directory"]:
            shutil.rmtree(scratch, ignore_errors=True)


def _load(con, interactions, items, spec: FeatureSpec, last_snapshot: int | None) -> tuple[int, int, int]:
    """Events and items as DuckDB tables; returns (first snapshot, last snapshot, number of events)."""
    sql = FeatureSQL(spec, DUCKDB, 0)  # the input statements do not depend on the last snapshot
    sources = {}
    for name, data in (("events_source", interactions), ("items_source", items)):
        if isinstance(data, (str, Path)):
            sources[name] = "read_parquet(" + DUCKDB.string(str(data)) + ")"
        else:
            con.register(name, data)
            sources[name] = name
    con.execute(f"CREATE OR REPLACE TEMP TABLE events AS {sql.events(sources['events_source'])}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE items AS {sql.items(sources['items_source'])}")
    duplicated = [row[0] for row in con.execute(sql.duplicate_items("items")).fetchall()]
    lo, hi, n = con.execute("SELECT MIN(day), MAX(day), COUNT(*) FROM events").fetchall()[0]
    first, last = snapshot_range(duplicated, lo, hi, n, last_snapshot)
    return first, last, int(n)


def _segments(con, sql: FeatureSQL, entity: str, views, buckets: int, bucket: int) -> pa.Table:
    """One bucket's segments of `entity` with every column of its `views` (recency excepted), as Arrow."""
    where = f"hash(e.{entity}) % {buckets} = {bucket}"
    con.execute(f"CREATE OR REPLACE TEMP TABLE daily AS {sql.daily(entity, 'events', 'items', where)}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE prefix AS {sql.prefix(entity, 'daily')}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE segments AS {sql.segments('prefix')}")
    con.execute(f"CREATE OR REPLACE TEMP TABLE lookups AS {sql.lookups('prefix', 'segments')}")
    windows = f"({sql.windows(entity, 'prefix', 'lookups')}) w"
    return con.sql(sql.features(views, windows)).to_arrow_table()

