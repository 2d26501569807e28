"""One entry point for the batch feature job, whichever engine runs it: what the pipeline step calls.

    run_feature_job(interactions, items, "data/features", spec={"windows_days": [1, 7, 30]}, engine="duckdb",
                    duckdb={"memory_limit": "2GB"})

Both engines run the one SQL definition of the tables (recsys.features.sql) and write the same Parquet.
`engine="duckdb"` (the default) runs it in-process with bounded memory (recsys.features.batch): one machine,
no JVM, tens of millions of events. `engine="spark"` runs it on `spark["master"]` (recsys.features.spark_job):
`local[*]`, or a cluster for logs beyond one machine.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from recsys.features.batch import run_duckdb_job, snapshot_bounds
from recsys.features.definitions import SNAPSHOT_SECONDS, FeatureSpec

log = logging.getLogger(__name__)
ENGINES = ("duckdb", "spark")


def run_feature_job(interactions: pd.DataFrame, items: pd.DataFrame, out_dir: str | Path,
                    spec: FeatureSpec | dict | None = None, engine: str = "duckdb", spark: dict | None = None,
                    as_of=None, duckdb: dict | None = None) -> dict:
    """Compute and write the batch views; returns a summary (rows per view, last snapshot, timing, spec).

    `as_of`: the job's "now" (a timestamp or "now"); None = the end of the last event's day (historical
    data, e.g. the synthetic set or MovieLens). No snapshot is stamped after it. `duckdb` / `spark`: the
    engine's settings (recsys.features.batch.DEFAULTS; master, app_name, conf, stop)."""
    if engine not in ENGINES:
        raise ValueError(f"unknown feature engine {engine!r}; choose one of {list(ENGINES)}")
    if interactions.empty:
        raise ValueError("the feature job needs at least one interaction")
    if not isinstance(spec, FeatureSpec):
        spec = FeatureSpec.from_dict(dict(spec or {}))
    spec = spec.resolve(interactions, items)
    as_of = pd.Timestamp.now(tz="UTC") if as_of == "now" else as_of
    first, last = snapshot_bounds(interactions["timestamp"], as_of)
    out_dir = Path(out_dir)
    start = time.perf_counter()
    if engine == "duckdb":
        rows = run_duckdb_job(interactions, items, spec, out_dir, last, duckdb)["rows"]
    else:
        rows = _run_on_spark(interactions, items, spec, out_dir, last, spark or {})["rows"]
    seconds = time.perf_counter() - start
    summary = {"features_dir": str(out_dir.resolve()), "engine": engine, "seconds": round(seconds, 2),
               "events": len(interactions), "events_per_second": round(len(interactions) / max(seconds, 1e-9)),
               "rows": rows, "first_snapshot": _iso(first), "last_snapshot": _iso(last), "spec": asdict(spec)}
    log.info("feature job (%s): %d events -> %s rows in %.1f s; snapshots %s .. %s", engine, len(interactions),
             rows, seconds, summary["first_snapshot"], summary["last_snapshot"])
    return summary


def _run_on_spark(interactions, items, spec, out_dir, last, settings: dict) -> dict:
    from pyspark.sql import SparkSession

    from recsys.features.spark_job import run_spark_job, spark_session

    # A session someone else started (a notebook, the test suite) is theirs to stop; getActiveSession is
    # per thread, the class attribute sees one started on any thread.
    existed = SparkSession.getActiveSession() is not None or SparkSession._instantiatedSession is not None
    spark = spark_session(settings.get("master", "local[*]"), settings.get("app_name", "recsys-features"),
                          settings.get("conf"))
    try:
        return run_spark_job(spark, interactions, items, spec, out_dir, last)
    finally:
        if not existed and settings.get("stop", True):  # free the JVM for the steps that follow
            spark.stop()


def _iso(day: int) -> str:
    return pd.Timestamp(day * SNAPSHOT_SECONDS, unit="s", tz="UTC").isoformat()

