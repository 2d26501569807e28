"""Sources: the batch job's Parquet tables (partitioned by snapshot date) and push sources for streaming.

Batch: one dataset per view under data/features/<view>/date=YYYY-MM-DD/, written by recsys.features.batch or
recsys.features.spark_job. Push: the stream consumer pushes the user's recent events, real-time counters and the user's live vector
(`FeatureStore.push`); their batch sources are where pushed rows can be logged for backfills (empty until
then, created by the job so that materialization finds a table).
"""

from feast import FileSource, PushSource
from feast.data_format import ParquetFormat

from common import FEATURES_DIR, d


def _batch(view: str) -> FileSource:
    return FileSource(name=f"{view}_source", path=str(FEATURES_DIR / view / "*" / "*.parquet"),
                      file_format=ParquetFormat(), timestamp_field=d.EVENT_TIMESTAMP,
                      description=f"{view}: daily snapshots; a row at T covers events before T")


def _log(view: str) -> FileSource:
    return FileSource(name=f"{view}_log", path=str(FEATURES_DIR / f"{view}.parquet"), file_format=ParquetFormat(),
                      timestamp_field=d.EVENT_TIMESTAMP, description=f"pushed rows of {view}")


user_activity_source = _batch(d.USER_ACTIVITY)
user_affinity_source = _batch(d.USER_AFFINITY)
item_popularity_source = _batch(d.ITEM_POPULARITY)
user_counters_push = PushSource(name="user_counters_push", batch_source=_log(d.USER_COUNTERS))
user_vector_push = PushSource(name="user_vector_push", batch_source=_log(d.USER_VECTOR))
user_events_push = PushSource(name="user_events_push", batch_source=_log(d.USER_EVENTS))
