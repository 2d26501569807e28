"""Ranking quality through the product path: MovieLens-100K brought as the user's own files.

    python benchmarks/quality_files.py [--skip-train]

1. `python -m recsys.data.movielens --export-files data/movielens_files`: the per-user temporal split of
   benchmarks/quality_movielens.py; everything before each user's test part (train + valid) goes to
   interactions_trainvalid.csv with items.csv and users.csv, the test part to interactions_test.csv.
2. `python run.py --pipeline train --config configs/train_files.yaml` trains on the files only (the pipeline
   splits them again for early stopping and ranker labels) and promotes the model.
3. `python run.py --pipeline batch --config configs/batch_files.yaml` writes top-50 for every user.
4. The batch file is scored against interactions_test.csv: @10 over the 943 users, as in the benchmark.

5. `python benchmarks/quality_movielens.py` runs the benchmark protocol on the same split; both figures are
   printed side by side (skip it with --skip-protocol).

Unlike benchmarks/quality_movielens.py, the served model knows each user's valid interactions too, and the
registered model is refit on everything the files hold (train + valid + test of its own split) with the
settings early stopping chose: a user's whole past, as in production. This path must score at least the
protocol's figure.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from recsys.evaluation.metrics import ranking_metrics  # noqa: E402
from recsys.evaluation.protocol import format_table  # noqa: E402

FILES = ROOT / "data" / "movielens_files"
OUTPUT = ROOT / "data" / "batch" / "files_recommendations.csv"


def run(*args: str) -> float:
    start = time.time()
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, env={**os.environ, "ZENML_ANALYTICS_OPT_IN": "false"})
    return time.time() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--skip-train", action="store_true", help="score the existing batch output only")
    parser.add_argument("--skip-protocol", action="store_true", help="do not run benchmarks/quality_movielens.py")
    args = parser.parse_args()
    timings = {}
    if not args.skip_train:
        timings["export"] = run("-m", "recsys.data.movielens", "--cache-dir", "data/raw", "--export-files", str(FILES))
        timings["train"] = run("run.py", "--pipeline", "train", "--config", "configs/train_files.yaml")
        timings["batch"] = run("run.py", "--pipeline", "batch", "--config", "configs/batch_files.yaml")
    recs = pd.read_csv(OUTPUT, dtype={"user_id": str, "item_id": str})
    truth = pd.read_csv(FILES / "interactions_test.csv", dtype={"userId": str, "movieId": str})
    truth = truth.rename(columns={"userId": "user_id", "movieId": "item_id"})
    known = pd.read_csv(FILES / "interactions_trainvalid.csv", dtype={"userId": str, "movieId": str})
    leaked = recs.merge(known.rename(columns={"userId": "user_id", "movieId": "item_id"}), on=["user_id", "item_id"])
    n_items = len(pd.read_csv(FILES / "items.csv"))
    metrics = ranking_metrics(recs, truth, [10, 50], n_items=n_items)
    table = pd.DataFrame([metrics], index=pd.Index(["batch file"], name="model"))
    print(f"\n{recs.user_id.nunique()} users x {recs.groupby('user_id').size().max()} recommendations "
          f"({len(leaked)} already-known items recommended); scored on {truth.user_id.nunique()} test users")
    print(format_table(table[[c for c in table.columns if c.endswith("@10")]]))
    print(format_table(table[[c for c in table.columns if c.endswith("@50")]]))
    if not args.skip_protocol:
        start = time.time()
        out = subprocess.run([sys.executable, "benchmarks/quality_movielens.py"], cwd=ROOT, check=True,
                             capture_output=True, text=True).stdout
        timings["protocol"] = time.time() - start
        staged = next(line for line in out.splitlines() if line.startswith("| staged"))
        header = next(line for line in out.splitlines() if line.startswith("| model"))
        cols = [c.strip() for c in header.strip("|").split("|")]
        values = dict(zip(cols, [c.strip() for c in staged.strip("|").split("|")]))
        print(f"\nproduct path (batch file) vs the benchmark protocol (staged, benchmarks/quality_movielens.py):")
        for metric in ("ndcg@10", "recall@10"):
            print(f"  {metric}: {metrics[metric]:.4f} vs {float(values[metric]):.4f}"
                  f" ({'at least' if metrics[metric] >= float(values[metric]) else 'BELOW'} the protocol)")
    print("wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + f" on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
