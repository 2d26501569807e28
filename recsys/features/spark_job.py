"""The batch feature job on PySpark: the engine for event logs that do not fit one machine.

`spark.master` comes from config: `local[*]` (in-process), or a cluster URL (spark://host:7077, yarn,
k8s://...) with no code change; the output directory must then be one the executors can write and the Feast
offline store can read (RECSYS_FEATURES_DIR). It runs recsys.features.sql's statements, the ones the DuckDB
engine (recsys.features.batch) runs, as Spark SQL temp views; a parity test holds the two to the same tables.
Each task then hands its segments to recsys.features.snapshots as Arrow (`mapInArrow`), which writes their
snapshot rows with pyarrow: Spark's own Parquet writer took ~2.5x as long on the float lists. Executors
need numpy and pyarrow (PySpark's Arrow support), not the project: that module travels by value.

    spark = spark_session("local[*]")
    run_spark_job(spark, interactions, items, spec, "data/features")
"""

from __future__ import annotations

import logging
import os
import sys
import time
import uuid
from pathlib import Path

from recsys.features import snapshots
from recsys.features.definitions import FeatureSpec
from recsys.features.offline import clear_leftovers, finish, publish, staging_dir
from recsys.features.snapshots import file_schema
from recsys.features.sql import ENTITY_VIEWS, SPARK, FeatureSQL, snapshot_range

log = logging.getLogger(__name__)
# Settings the output depends on (UTC days, microsecond Parquet timestamps that DuckDB / Feast read); they
# are SQL settings, so they also apply to a session that already exists.
REQUIRED_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}
# HotSpot leaves methods over 8,000 bytes of bytecode to the interpreter; Spark's generated code for the
# window's ~100 running sums is such a method: compiling it halves their time (JVM options apply when the
# session starts).
JIT = "-XX:-DontCompileHugeMethods"
DEFAULT_CONF = {"spark.ui.enabled": "false", "spark.sql.execution.arrow.pyspark.enabled": "true",
                "spark.driver.extraJavaOptions": JIT, "spark.executor.extraJavaOptions": JIT}
SEGMENTS_PER_FILE = 1_000_000  # a task writes its segments' rows in files of at most this many segments


def spark_session(master: str = "local[*]", app_name: str = "recsys-features", conf: dict | None = None):
    """A SparkSession on `master` (or the running one: Spark allows one per process). In local mode the
    Python workers run this interpreter (PySpark's default is whatever `python3` is on PATH, which need not
    have pyarrow) unless PYSPARK_PYTHON says otherwise; on a cluster, set PYSPARK_PYTHON for the executors."""
    from pyspark.sql import SparkSession

    if master.startswith("local"):
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

    builder = SparkSession.builder.master(master).appName(app_name)
    for key, value in {**DEFAULT_CONF, **(conf or {}), **REQUIRED_CONF}.items():
        builder = builder.config(key, str(value))
    spark = builder.getOrCreate()
    for key, value in REQUIRED_CONF.items():
        spark.conf.set(key, value)
    return spark


def run_spark_job(spark, interactions, items, spec: FeatureSpec, out_dir: str | Path,
                  last_snapshot: int | None = None) -> dict:
    """Compute the batch views with Spark SQL and write them (Parquet partitioned by date) plus the spec.
    `interactions` / `items` are pandas frames or Parquet paths Spark can read. Returns {"rows": {view: n},
    "first_snapshot": day, "last_snapshot": day} (days since the epoch)."""
    from pyspark import StorageLevel

    start = time.perf_counter()
    for key, value in REQUIRED_CONF.items():
        spark.conf.set(key, value)
    name = f"recsys_features_{uuid.uuid4().hex[:8]}"  # temp views of this run only
    views = lambda *parts: "_".join((name, *parts))  # noqa: E731
    cached, registered = [], []

    def register(frame, *parts, persist: bool = False) -> str:
        if persist:
            frame = frame.persist(StorageLevel.MEMORY_AND_DISK)
            cached.append(frame)
        frame.createOrReplaceTempView(views(*parts))
        registered.append(views(*parts))
        return views(*parts)

    try:
        first_sql = FeatureSQL(spec, SPARK, 0)  # the input statements do not depend on the last snapshot
        events = register(spark.sql(first_sql.events(register(_as_spark(spark, interactions), "source_events"))),
                          "events")
        items_view = register(spark.sql(first_sql.items(register(_as_spark(spark, items), "source_items"))), "items")
        duplicated = [row[0] for row in spark.sql(first_sql.duplicate_items(items_view)).collect()]
        lo, hi, n = spark.sql(f"SELECT MIN(day), MAX(day), COUNT(*) FROM {events}").first()
        first, last = snapshot_range(duplicated, lo, hi, n, last_snapshot)
        sql = FeatureSQL(spec, SPARK, last)
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        clear_leftovers(out_dir)
        rows = {}
        for entity, entity_views in ENTITY_VIEWS.items():
            daily = register(spark.sql(sql.daily(entity, events, items_view)), entity, "daily", persist=True)
            for view in entity_views:
                windows = register(spark.sql(sql.running_windows(entity, daily, [view])), view, "windows")
                staged = staging_dir(out_dir, view)
                rows[view] = _write(spark.sql(sql.features([view], windows)), *file_schema(spec, view), staged)
                publish(out_dir, view, staged)
                log.info("feature job (spark): %s, %s rows (%.0f s)", view, f"{rows[view]:,}",
                         time.perf_counter() - start)
        finish(out_dir, spec)
        return {"rows": rows, "first_snapshot": first, "last_snapshot": last}
    finally:
        for frame in cached:  # the session may be someone else's: free only what this job made
            frame.unpersist()
        for view in registered:
            spark.catalog.dropTempView(view)


def _write(segments, schema, recency, folder: Path) -> int:
    """Every task writes its segments' snapshot rows under `folder` (files part-<task>-<chunk>: a retried
    task rewrites the same files); returns the rows written."""
    import pyarrow as pa
    from pyspark import cloudpickle
    from pyspark.sql import functions as F

    # The task below refers to the module's functions, not to the module (whose namespace holds project
    # imports): pickled by value, they carry only what they use.
    cloudpickle.register_pickle_by_value(snapshots)
    tables, write_snapshots = snapshots.tables, snapshots.write_snapshots
    per_file, folder = SEGMENTS_PER_FILE, str(folder)

    def write_task(batches):
        from pyspark import TaskContext

        task, rows = TaskContext.get().partitionId(), 0
        for chunk, table in enumerate(tables(batches, per_file)):
            rows += write_snapshots(table, schema, recency, folder, f"{task:05d}-{chunk:03d}")
        yield pa.RecordBatch.from_pydict({"rows": [rows]})

    return int(segments.mapInArrow(write_task, "rows long").agg(F.sum("rows")).first()[0] or 0)


def _as_spark(spark, data):
    if isinstance(data, (str, Path)):
        # pandas writes nanosecond timestamps, which Spark cannot read as timestamps: read them as longs
        # (nanoseconds) and convert; Spark-written microsecond timestamps read as they are.
        from pyspark.sql import functions as F
        from pyspark.sql.types import LongType

        spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
        frame = spark.read.parquet(str(data))
        if "timestamp" in frame.columns and isinstance(frame.schema["timestamp"].dataType, LongType):
            frame = frame.withColumn("timestamp", F.timestamp_micros(F.expr("timestamp div 1000")))
        return frame
    frame = data.copy()
    for column in frame.columns:  # object columns of mixed content do not convert; ids are strings anyway
        if frame[column].dtype == object:
            frame[column] = frame[column].astype("string")
    return spark.createDataFrame(frame)
