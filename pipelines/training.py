"""Training pipeline: data -> split -> two-tower + index -> candidates -> ranker -> Recommender -> evaluate
-> quality gate -> register (bundle, MLflow version + alias, ZenML model stage) when the gate passes."""

from typing import Any, Dict, Optional

from zenml import pipeline

from pipelines.data import data_pipeline
from steps.cache import CACHE_POLICY
from steps.data import split_data
from steps.evaluation import evaluate, quality_gate
from steps.registry import register_model
from steps.training import (
    assemble_recommender,
    build_ann_index,
    generate_candidates,
    train_ranker,
    train_retrieval,
)


@pipeline(cache_policy=CACHE_POLICY)  # reuse a step only while recsys/ is unchanged
def train_pipeline(source: str = "synthetic", source_params: Optional[Dict[str, Any]] = None):
    """`source` / `source_params` choose the dataset (recsys.data.loader); every other value is a step
    parameter in the config file."""
    interactions, items, users = data_pipeline(source, source_params)
    train, valid, test = split_data(interactions)
    two_tower = train_retrieval(train, valid, items, users)
    ann_index = build_ann_index(two_tower)
    generator, recall = generate_candidates(train, valid, items, users, two_tower, ann_index)
    ranker, importance = train_ranker(generator, train, valid, items, users)
    recommender = assemble_recommender(generator, ranker, items, users, train, valid)
    metrics, _ = evaluate(recommender, train, valid, test, items)
    gate_passed = quality_gate(metrics)
    register_model(recommender, test, gate_passed, metrics, recall, importance)
