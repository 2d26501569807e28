"""The batch feature job on PySpark: the engine for event logs that do not fit one machine.

`spark.master` comes from config: `local[*]` (in-process), or a cluster URL (spark://host:7077, yarn,
k8s://...) with no code change; the output directory must then be one the executors can write and the Feast
offline store can read (RECSYS_FEATURES_DIR). It runs recsys.features.sql's statements, the ones the DuckDB
engine (recsys.features.batch) runs, as Spark SQL temp views; a parity test holds the two to the same tables.

    spark = spark_session("local[*]")
    run_spark_job(spark, interactions, items, spec, "data/features")
"""

from __future__ import annotations

import uuid
from pathlib import Path

from recsys.features.definitions import PARTITION, FeatureSpec
from recsys.features.offline import finish, publish, staging_dir
from recsys.features.sql import ENTITY_VIEWS, SPARK, FeatureSQL, snapshot_range

# Settings the output depends on (UTC days, microsecond Parquet timestamps that DuckDB / Feast read); they
# are SQL settings, so they also apply to a session that already exists.
REQUIRED_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}
DEFAULT_CONF = {"spark.ui.enabled": "false", "spark.sql.execution.arrow.pyspark.enabled": "true"}
# Set for the job's duration and restored after: a task keeps a writer open per date it writes instead of
# sorting its rows by date first (~10% of the job's CPU here); beyond that many dates it sorts again.
JOB_CONF = {"spark.sql.maxConcurrentOutputFiles": "256"}


def spark_session(master: str = "local[*]", app_name: str = "recsys-features", conf: dict | None = None):
    """A SparkSession on `master` (or the running one: Spark allows one per process)."""
    from pyspark.sql import SparkSession

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

    for key, value in REQUIRED_CONF.items():
        spark.conf.set(key, value)
    saved = {key: spark.conf.get(key, None) for key in JOB_CONF}
    for key, value in JOB_CONF.items():
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
        for entity, entity_views in ENTITY_VIEWS.items():
            daily = register(spark.sql(sql.daily(entity, events, items_view)), entity, "daily", persist=True)
            for view in entity_views:
                windows = register(spark.sql(sql.running_windows(entity, daily, [view])), view, "windows")
                features = register(spark.sql(sql.features([view], windows)), view, "features")
                staged = staging_dir(out_dir, view)
                spark.sql(sql.rows(view, features)).write.mode("overwrite").partitionBy(PARTITION).parquet(str(staged))
                publish(out_dir, view, staged)
        finish(out_dir, spec)
        return {"first_snapshot": first, "last_snapshot": last}
    finally:
        for frame in cached:  # the session may be someone else's: free only what this job made
            frame.unpersist()
        for view in registered:
            spark.catalog.dropTempView(view)
        for key, value in saved.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)


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
