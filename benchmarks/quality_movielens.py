"""Ranking quality on MovieLens-100K under the project's offline protocol.

Protocol: every interaction is an implicit positive; per user, interactions sorted by time, the last 10% are
test, the 10% before valid, the rest train (RecBole's rule: floor(n * 0.1), at least 1). Models learn from
train (valid serves early stopping and ranker labels); each test user is scored from their train history,
over the whole catalogue with their train+valid items masked; metrics @10 averaged over the 943 test users.

    python benchmarks/quality_movielens.py [--cache-dir data/raw] [--ranker lightgbm|xgboost] [--no-two-tower]

Prints the staged recommender beside popularity, two-tower-only and item-item-only, all scored through the
same `recommend_batch` the service and batch inference use.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import yaml  # noqa: E402

from recsys.data.movielens import load_movielens_100k  # noqa: E402
from recsys.data.splits import temporal_user_split  # noqa: E402
from recsys.evaluation.protocol import evaluate, format_table  # noqa: E402
from recsys import training  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def step_params(config: str | Path) -> Callable[[str], dict]:
    """step name -> its `params` dict in a train config (empty when the file or the step has none)."""
    path = Path(config)
    steps = (yaml.safe_load(path.read_text()) or {}).get("steps", {}) if path.exists() else {}
    return lambda step: ((steps.get(step) or {}).get("parameters") or {}).get("params", {}) or {}


def load_split(cache_dir: str | Path):
    """MovieLens-100K and its per-user temporal 80/10/10 split (the protocol above)."""
    ds = load_movielens_100k(cache_dir)
    split = temporal_user_split(ds.interactions, (0.8, 0.1, 0.1))
    print(f"MovieLens-100K: {len(ds.interactions)} interactions, {ds.interactions.user_id.nunique()} users, "
          f"{len(ds.items)} items; train/valid/test = {len(split.train)}/{len(split.valid)}/{len(split.test)}")
    return ds, split


def fit_generator(ds, split, params: Callable[[str], dict], two_tower: bool = True):
    """Candidate sources fitted on train (with the two-tower model unless `two_tower` is False)."""
    model = index = None
    if two_tower:
        from recsys.retrieval.index import AnnIndex
        from recsys.retrieval.two_tower import TwoTowerConfig, train_two_tower

        model = train_two_tower(split.train, split.valid, ds.items, ds.users, TwoTowerConfig(**params("train_retrieval")))
        index = AnnIndex.build(model.item_embeddings, model.item_ids, **params("build_ann_index"))
    return training.fit_candidate_generator(split.train, split.valid, ds.items, ds.users, model, index,
                                            params("generate_candidates"))


def fit_staged(ds, split, generator, ranker_params: dict, store=None):
    """The staged recommender (ranker learnt on train -> valid) knowing train histories; (model, importance).
    `store`: an optional feature-store provider for the ranker (recsys.features.provider)."""
    ranking, importance = training.fit_ranker(generator, split.train, split.valid, ds.items, ds.users,
                                              ranker_params, store)
    return training.build_recommender(generator, ranking, ds.items, ds.users, split.train), importance


def score(models: dict, ds, split):
    """Metrics @10 of each model over the test users, train+valid masked."""
    return evaluate(models, split.test, k=10, n_items=len(ds.items), exclude=split.valid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cache-dir", default=str(ROOT / "data" / "raw"))
    parser.add_argument("--config", default=str(ROOT / "configs" / "train_movielens.yaml"),
                        help="train config whose step parameters (two_tower, candidates, ranker) are used")
    parser.add_argument("--ranker", default=None, help="override the ranker kind (lightgbm, xgboost)")
    parser.add_argument("--no-two-tower", action="store_true", help="skip the TFRS model (faster)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    params = step_params(args.config)

    start = time.time()
    ds, split = load_split(args.cache_dir)
    generator = fit_generator(ds, split, params, two_tower=not args.no_two_tower)
    recall = training.candidate_recall(generator, split.train, split.test)
    ranker_params = params("train_ranker")
    if args.ranker:
        ranker_params = {**ranker_params, "kind": args.ranker}
    staged, importance = fit_staged(ds, split, generator, ranker_params)
    models = {"staged": staged, **training.comparison_models(staged, split.train, split.train)}
    table = score(models, ds, split)
    print("\ncandidate recall on test (from train histories):")
    for key, value in recall.items():
        print(f"  {key}: {value:.4f}")
    print("\ntop ranker features:\n" + importance.head(10).to_string(index=False))
    print(f"\nmetrics @10 over {split.test.user_id.nunique()} test users (train+valid masked):")
    print(format_table(table))
    print(f"\nwall time {time.time() - start:.0f} s on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
