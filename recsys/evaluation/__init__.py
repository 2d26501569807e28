"""Offline evaluation: ranking metrics, baselines and the protocol that scores any object exposing
`recommend_batch(user_ids, k)` — the same `Recommender` the service runs — against held-out interactions."""

from recsys.evaluation.baselines import PopularityRecommender
from recsys.evaluation.metrics import (
    catalog_coverage,
    hit_rate_at_k,
    intra_list_diversity,
    item_popularity,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    novelty,
    precision_at_k,
    ranking_metrics,
    recall_at_k,
)
from recsys.evaluation.protocol import evaluate, format_table

__all__ = [
    "PopularityRecommender",
    "catalog_coverage",
    "evaluate",
    "format_table",
    "hit_rate_at_k",
    "intra_list_diversity",
    "item_popularity",
    "map_at_k",
    "mrr_at_k",
    "ndcg_at_k",
    "novelty",
    "precision_at_k",
    "ranking_metrics",
    "recall_at_k",
]
