"""Re-ranking trade-off: NDCG/recall against intra-list diversity as the MMR weight grows.

    python benchmarks/rerank_tradeoff.py [--config configs/train.yaml] [--weights 0 0.05 0.1 0.2 0.3 0.5]

Trains the staged recommender the way the train pipeline does (same config: data, split, two-tower,
candidate sources, ranker), with train + valid as known history, then scores `recommend_batch` on the test
interactions for each `rerank.mmr_weight` through the same `recsys.evaluation.protocol.evaluate` the
pipeline's evaluate step uses. This is how the default weight in recsys/serving/config.py was chosen.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from recsys import training  # noqa: E402
from recsys.data.loader import load_dataset  # noqa: E402
from recsys.data.splits import split_interactions  # noqa: E402
from recsys.evaluation.metrics import item_popularity  # noqa: E402
from recsys.evaluation.protocol import evaluate, format_table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "train.yaml"))
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    args = parser.parse_args()
    config = yaml.safe_load(Path(args.config).read_text())
    steps = config.get("steps", {})

    def params(step: str) -> dict:
        return ((steps.get(step) or {}).get("parameters") or {}).get("params", {}) or {}

    t0 = time.time()
    ds = load_dataset(config["parameters"]["source"], config["parameters"].get("source_params") or {})
    split_cfg = (steps.get("split_data") or {}).get("parameters") or {}
    split = split_interactions(ds.interactions, split_cfg.get("method", "temporal_user"),
                               tuple(split_cfg.get("ratios", (0.8, 0.1, 0.1))))
    from recsys.retrieval.index import AnnIndex
    from recsys.retrieval.two_tower import TwoTowerConfig, train_two_tower

    two_tower = train_two_tower(split.train, split.valid, ds.items, ds.users, TwoTowerConfig(**params("train_retrieval")))
    index = AnnIndex.build(two_tower.item_embeddings, two_tower.item_ids, **params("build_ann_index"))
    generator = training.fit_candidate_generator(split.train, split.valid, ds.items, ds.users, two_tower, index,
                                                 params("generate_candidates"))
    ranking, _ = training.fit_ranker(generator, split.train, split.valid, ds.items, ds.users, params("train_ranker"))
    history = pd.concat([split.train, split.valid], ignore_index=True)
    base = training.build_recommender(generator, ranking, ds.items, ds.users, history, params("assemble_recommender"))
    models = {f"mmr_weight={w:g}": base.variant(rerank={"mmr_weight": w}) for w in args.weights}
    categories = ds.items.set_index("item_id")["category"] if "category" in ds.items.columns else None
    table = evaluate(models, split.test, [10], n_items=len(ds.items), item_categories=categories,
                     item_popularity=item_popularity(history))
    cols = [c for c in ("ndcg@10", "recall@10", "diversity@10", "coverage@10") if c in table.columns]
    print(f"{ds.name}: {len(ds.items)} items, {split.test.user_id.nunique()} test users; "
          f"similarity: {base.config['rerank']['similarity']}, pool {base.config['rerank']['pool']}")
    print(format_table(table[cols]))
    print(f"wall time {time.time() - t0:.0f} s on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
