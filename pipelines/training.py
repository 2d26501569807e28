"""Training pipeline: data -> split -> two-tower + index -> candidates -> ranker -> Recommender -> evaluate
-> quality gate -> refit on all of the data with the chosen settings -> register (bundle, MLflow version +
alias, ZenML model stage) when the gate passes.
With `store_features`, the features sub-pipeline (job -> feast apply -> materialize) runs first and the
ranker reads Feast's point-in-time features."""

from typing import Any, Dict, Optional

from zenml import pipeline

from pipelines.data import data_pipeline
from pipelines.features import feature_store_pipeline
from steps.cache import CACHE_POLICY
from steps.data import split_data
from steps.evaluation import evaluate, quality_gate
from steps.registry import register_model
from steps.tracking import mark_failed
from steps.training import (
    assemble_recommender,
    build_ann_index,
    generate_candidates,
    refit_recommender,
    train_ranker,
    train_retrieval,
)


# Steps are reused while recsys/ is unchanged; a failing step closes the run's MLflow run as FAILED.
@pipeline(cache_policy=CACHE_POLICY, on_failure=mark_failed)
def train_pipeline(source: str = "synthetic", source_params: Optional[Dict[str, Any]] = None,
                   store_features: bool = False):
    """`source` / `source_params` choose the dataset (recsys.data.loader); `store_features` adds the feature
    store's features to the ranker; every other value is a step parameter in the config file."""
    interactions, items, users = data_pipeline(source, source_params)
    feature_store = feature_store_pipeline(interactions, items) if store_features else None
    train, valid, test, _ = split_data(interactions)
    two_tower = train_retrieval(train, valid, items, users)
    ann_index = build_ann_index(two_tower)
    generator, recall = generate_candidates(train, valid, items, users, two_tower, ann_index)
    ranker, importance = train_ranker(generator, train, valid, items, users, feature_store=feature_store)
    recommender = assemble_recommender(generator, ranker, items, users, train, valid)
    metrics, _ = evaluate(recommender, train, valid, test, items, candidate_recall=recall,
                          feature_importance=importance)
    gate_passed, _ = quality_gate(metrics)
    production, data_window = refit_recommender(recommender, train, valid, test, items, users, gate_passed)
    register_model(production, data_window, gate_passed, metrics, recall, importance)
