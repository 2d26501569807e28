"""The batch feature job on PySpark: the engine for event logs that do not fit one machine.

`spark.master` comes from config: `local[*]` (the default, in-process), or a cluster URL (spark://host:7077,
yarn, k8s://...) with no code change; the output directory must then be one the executors can write and
the Feast offline store can read (RECSYS_FEATURES_DIR). The computation mirrors recsys.features.batch line
for line (same definitions, same snapshot rule) and a parity test holds them to the same values.

    spark = spark_session("local[*]")
    run_spark_job(spark, interactions, items, spec, "data/features")
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from recsys.features.definitions import (
    EVENT_TIMESTAMP,
    ITEM_KEY,
    ITEM_POPULARITY,
    PARTITION,
    SNAPSHOT_SECONDS,
    USER_ACTIVITY,
    USER_AFFINITY,
    USER_KEY,
    FeatureSpec,
)
from recsys.features.offline import finish, publish, staging_dir

DAY_US = SNAPSHOT_SECONDS * 1_000_000
# Settings the output depends on (UTC days, microsecond Parquet timestamps that DuckDB / Feast read); they
# are SQL settings, so they also apply to a session that already exists.
REQUIRED_CONF = {"spark.sql.session.timeZone": "UTC", "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS"}
DEFAULT_CONF = {"spark.ui.enabled": "false", "spark.sql.execution.arrow.pyspark.enabled": "true"}


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
                  last_snapshot: int | None = None) -> dict[str, Path]:
    """Compute the batch views with Spark and write them (Parquet partitioned by date) plus the spec.
    `interactions` / `items` are pandas frames or Parquet paths Spark can read."""
    for key, value in REQUIRED_CONF.items():
        spark.conf.set(key, value)
    events, items_df = _as_spark(spark, interactions), _as_spark(spark, items)
    tables, cached = _compute(spark, events, items_df, spec, last_snapshot)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for view, frame in tables.items():
        staged = staging_dir(out_dir, view)
        frame.repartition(PARTITION).write.mode("overwrite").partitionBy(PARTITION).parquet(str(staged))
        paths[view] = publish(out_dir, view, staged)
    finish(out_dir, spec)
    for frame in cached:  # the session may be someone else's: free only what this job cached
        frame.unpersist()
    return paths


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


def compute_spark_tables(spark, interactions, items, spec: FeatureSpec, last_snapshot: int | None = None) -> dict:
    """{view: Spark DataFrame} in the spec's column order (the partition column last)."""
    return _compute(spark, interactions, items, spec, last_snapshot)[0]


def _compute(spark, interactions, items, spec: FeatureSpec, last_snapshot: int | None):
    """(tables, the DataFrames cached on the way)."""
    from pyspark.sql import functions as F

    if not spec.resolved:
        raise ValueError("resolve the FeatureSpec on the data first (FeatureSpec.resolve)")
    events = interactions.select(
        F.col(USER_KEY).cast("string").alias(USER_KEY), F.col(ITEM_KEY).cast("string").alias(ITEM_KEY),
        F.col("event_type").cast("string").alias("event_type"), F.unix_micros(F.col("timestamp")).alias("us"))
    events = events.withColumn("day", F.expr(f"us div {DAY_US}"))
    if last_snapshot is None:
        last_snapshot = int(events.agg(F.max("day")).first()[0]) + 1
    items = items.withColumn(ITEM_KEY, F.col(ITEM_KEY).cast("string")).dropDuplicates([ITEM_KEY])
    if spec.numeric:
        numeric = items.select(ITEM_KEY, *[F.col(c).cast("double").alias(c) for c in spec.numeric])
        events = events.join(F.broadcast(numeric), ITEM_KEY, "left")
    events = events.cache()
    values = _value_counts(spark, events, items, spec)
    user = _windows(events, USER_KEY, spec, last_snapshot, spec.numeric, values).cache()  # two views read it
    item = _windows(events, ITEM_KEY, spec, last_snapshot, (), None)
    tables = {USER_ACTIVITY: _finish(_activity(user, USER_KEY, spec, spec.numeric), USER_ACTIVITY, spec),
              ITEM_POPULARITY: _finish(_activity(item, ITEM_KEY, spec, ()), ITEM_POPULARITY, spec),
              USER_AFFINITY: _finish(_shares(user, spec), USER_AFFINITY, spec)}
    return tables, [events, user]


def _expand(daily, max_window: int, last_snapshot: int):
    from pyspark.sql import functions as F

    out = daily.withColumn("lag", F.explode(F.sequence(F.lit(1), F.lit(max_window))))
    return out.withColumn("T", F.col("day") + F.col("lag")).where(F.col("T") <= F.lit(last_snapshot))


def _value_counts(spark, events, items, spec: FeatureSpec):
    """Per (user, day): events on items carrying each attribute value, one column `<attribute>__<code>` per
    vocabulary entry (an "a|b" item counts for both), or None without attributes."""
    from pyspark.sql import functions as F

    out = None
    for column in spec.attributes:
        vocab = spec.vocabularies[column]
        codes = spark.createDataFrame(pd.DataFrame({"value": list(vocab), "v": range(len(vocab))}))
        values = items.select(ITEM_KEY, F.explode(F.split(F.col(column).cast("string"), r"\|")).alias("value"))
        values = values.withColumn("value", F.trim("value")).join(F.broadcast(codes), "value").select(ITEM_KEY, "v")
        counts = events.select(USER_KEY, ITEM_KEY, "day").join(F.broadcast(values), ITEM_KEY) \
            .groupBy(USER_KEY, "day").pivot("v", list(range(len(vocab)))).agg(F.count(F.lit(1)))
        counts = counts.select(USER_KEY, "day", *[F.col(str(j)).alias(f"{column}__{j}") for j in range(len(vocab))])
        out = counts if out is None else out.join(counts, [USER_KEY, "day"], "full")
    return out


def _windows(events, key: str, spec: FeatureSpec, last_snapshot: int, numeric, values):
    """Per (key, snapshot T): every daily sum over each window (`<sum>__<W>`) and the last event time."""
    from pyspark.sql import functions as F

    aggs = [F.sum(F.when(F.col("event_type") == e, 1).otherwise(0)).cast("long").alias(f"n_{e}")
            for e in spec.event_types]
    aggs += [F.count(F.lit(1)).alias("n_all"), F.max("us").alias("last_us")]
    sums = [f"n_{e}" for e in spec.event_types] + ["n_all"]
    for column in numeric:
        aggs += [F.sum(F.coalesce(F.col(column), F.lit(0.0))).alias(f"sum_{column}"),
                 F.count(F.col(column)).alias(f"cnt_{column}")]
        sums += [f"sum_{column}", f"cnt_{column}"]
    daily = events.groupBy(key, "day").agg(*aggs)
    if values is not None:
        value_columns = [c for c in values.columns if c not in (key, "day")]
        daily = daily.join(values, [key, "day"], "left").fillna(0, subset=value_columns)
        sums += value_columns
    expanded = _expand(daily, spec.max_window, last_snapshot)
    zero = {c: F.lit(0).cast(daily.schema[c].dataType) for c in sums}
    return expanded.groupBy(key, "T").agg(
        *[F.sum(F.when(F.col("lag") <= w, F.col(c)).otherwise(zero[c])).alias(f"{c}__{w}")
          for c in sums for w in spec.windows_days],
        F.max("last_us").alias("last_us"))


def _activity(win, key: str, spec: FeatureSpec, numeric):
    from pyspark.sql import functions as F

    entity = "user" if key == USER_KEY else "item"
    out = [F.col(key), F.col("T")]
    for e in spec.event_types:
        out += [F.col(f"n_{e}__{w}").cast("long").alias(f"{entity}_{e}_{w}d") for w in spec.windows_days]
    out += [F.col(f"n_all__{w}").cast("long").alias(f"{entity}_events_{w}d") for w in spec.windows_days]
    for name, (num, den) in spec.ratios.items():
        out += [_ratio(F.col(f"n_{num}__{w}"), F.col(f"n_{den}__{w}")).alias(f"{entity}_{name}_{w}d")
                for w in spec.windows_days]
    out.append(((F.col("T") * DAY_US - F.col("last_us")).cast("double") / F.lit(float(DAY_US)))
               .alias(f"{entity}_days_since_last_event"))
    for column in numeric:
        out += [_ratio(F.col(f"sum_{column}__{w}"), F.col(f"cnt_{column}__{w}")).alias(f"{entity}_{column}_mean_{w}d")
                for w in spec.windows_days]
    return win.select(*out)


def _ratio(num, den):
    from pyspark.sql import functions as F

    return F.when(den > 0, num.cast("double") / den.cast("double"))  # null when the denominator is 0


def _shares(win, spec: FeatureSpec):
    """Per (user, T), attribute and window: each value's share of the window's events (null: no event)."""
    from pyspark.sql import functions as F

    out = [F.col(USER_KEY), F.col("T")]
    for column in spec.attributes:
        for w in spec.windows_days:
            total = F.col(f"n_all__{w}").cast("double")
            shares = F.array(*[(F.col(f"{column}__{j}__{w}").cast("double") / total).cast("float")
                               for j in range(len(spec.vocabularies[column]))])
            out.append(F.when(total > 0, shares).alias(f"user_{column}_share_{w}d"))
    return win.select(*out)


def _finish(frame, view: str, spec: FeatureSpec):
    """Snapshot day -> event_timestamp (UTC midnight) and date partition; columns in the spec's order."""
    from pyspark.sql import functions as F

    stamped = frame.withColumn(EVENT_TIMESTAMP, F.timestamp_micros(F.col("T") * F.lit(DAY_US)))
    stamped = stamped.withColumn(PARTITION, F.date_format(F.col(EVENT_TIMESTAMP), "yyyy-MM-dd"))
    return stamped.select(*spec.columns(view))
