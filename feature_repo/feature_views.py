"""Feature views, one per use and grain. Daily views feed ranking (training through point-in-time joins,
serving through the online store); real-time views are fed by push sources (stream consumer).

TTL = one snapshot period on the daily views: a daily row older than that means the entity had no event in
the longest window, so a point-in-time join returns nothing rather than an outdated row. Feast ignores TTL
on online reads (feast #6821); recsys.features.online applies the same rule itself.
"""

from datetime import timedelta

from feast import FeatureView, Field

from common import FEAST_TYPES, SPEC, d
from data_sources import (
    item_popularity_source,
    user_activity_source,
    user_affinity_source,
    user_counters_push,
    user_events_push,
    user_vector_push,
)
from entities import item, user

DAILY = timedelta(seconds=d.SNAPSHOT_SECONDS)


def _schema(view: str) -> list:
    return [Field(name=name, dtype=FEAST_TYPES[dtype]) for name, dtype in SPEC.fields(view)]


user_activity_daily = FeatureView(
    name=d.USER_ACTIVITY, entities=[user], ttl=DAILY, schema=_schema(d.USER_ACTIVITY), source=user_activity_source,
    online=True, tags={"use": "ranking", "grain": "daily"},
    description="Per user and window (days): events by type, ratios (CTR, conversion), recency, numeric means.")
user_affinity_daily = FeatureView(
    name=d.USER_AFFINITY, entities=[user], ttl=DAILY, schema=_schema(d.USER_AFFINITY), source=user_affinity_source,
    online=True, tags={"use": "ranking", "grain": "daily"},
    description="Per user and window: share of events on each value of an item attribute (vocabulary in "
                "data/features/spec.json).")
item_popularity_daily = FeatureView(
    name=d.ITEM_POPULARITY, entities=[item], ttl=DAILY, schema=_schema(d.ITEM_POPULARITY),
    source=item_popularity_source, online=True, tags={"use": "ranking", "grain": "daily"},
    description="Per item and window: events by type, ratios, recency.")
user_counters_realtime = FeatureView(
    name=d.USER_COUNTERS, entities=[user], ttl=timedelta(days=1), schema=_schema(d.USER_COUNTERS),
    source=user_counters_push, online=True, tags={"use": "ranking", "grain": "realtime"},
    description="Counters the stream consumer keeps (last hour / day), pushed per event.")
user_vector_realtime = FeatureView(
    name=d.USER_VECTOR, entities=[user], ttl=timedelta(days=7), schema=_schema(d.USER_VECTOR),
    source=user_vector_push, online=True, tags={"use": "retrieval", "grain": "realtime"},
    description="The user tower's vector of the user's live history, pushed by the stream consumer.")
user_events_realtime = FeatureView(
    name=d.USER_EVENTS, entities=[user], ttl=timedelta(days=30), schema=_schema(d.USER_EVENTS),
    source=user_events_push, online=True, tags={"use": "serving", "grain": "realtime"},
    description="The user's most recent events (ids, items, types, times; oldest first), written by the stream "
                "consumer: the seen filter, impression fatigue and the candidate sources read them per request.")
