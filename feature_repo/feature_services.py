"""Versioned feature services, named <entity>_<what>_<grain>_v<N>: what a model asks for. A change to a
service's features is a new version (v2) beside the old one, so a deployed model keeps reading what it was
trained on. recsys.features.definitions.SERVICES lists the same names for the code that reads them."""

from feast import FeatureService

from feature_views import (
    item_popularity_daily,
    user_activity_daily,
    user_affinity_daily,
    user_counters_realtime,
    user_events_realtime,
    user_vector_realtime,
)

user_ranking_daily_v1 = FeatureService(
    name="user_ranking_daily_v1", features=[user_activity_daily, user_affinity_daily],
    description="User-level daily features of the ranker (one online lookup per request).")
item_ranking_daily_v1 = FeatureService(
    name="item_ranking_daily_v1", features=[item_popularity_daily],
    description="Item-level daily features of the ranker (kept in memory by the service, refreshed).")
user_ranking_realtime_v1 = FeatureService(
    name="user_ranking_realtime_v1", features=[user_counters_realtime],
    description="Real-time counters pushed by the stream consumer.")
user_retrieval_realtime_v1 = FeatureService(
    name="user_retrieval_realtime_v1", features=[user_vector_realtime],
    description="The user's live vector for retrieval, pushed by the stream consumer.")
user_events_realtime_v1 = FeatureService(
    name="user_events_realtime_v1", features=[user_events_realtime],
    description="The user's recent events, written by the stream consumer, read by the service per request.")
