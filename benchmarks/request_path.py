"""How straight is a /recommend request? The project files one request passes through, traced.

    python benchmarks/request_path.py                  # a small bundle built here (recsys.training, no TensorFlow)
    python benchmarks/request_path.py --bundle DIR     # any model bundle
    python benchmarks/request_path.py --show           # also print the sequence of stays
    python benchmarks/request_path.py --serving-only   # only bentos/ and recsys/serving/ count as places

Follows one request from the BentoML handler (`RecommenderService.recommend`, called in process on the
service class, no HTTP) with `sys.setprofile`: at every Python call and return, the innermost frame that
belongs to the project (bentos/ or recsys/; library frames count as the project file that called them) is
where the request is. Consecutive events in the same file are one **stay**; a stay in a file the request had
already left is a **return**. Printed for a known user whose ranked list is cached (the common request) and
for one whose list is not (retrieve + rank run), plus the distinct files and how often each is entered.
With `--serving-only`, the libraries the serving layer calls (features, retrieval, ranking, monitoring) count
as the serving file that called them: the orchestration alone. Copy the script into another checkout to trace
that code the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PROJECT = (str(ROOT / "bentos") + os.sep, str(ROOT / "recsys") + os.sep)

DATA = {"n_users": 300, "n_items": 120, "n_events": 6000, "seed": 5}
SOURCES = {"sources": {"two_tower": None, "item_item": {"n": 40}, "co_visitation": {"n": 20}, "popular": {"n": 20}}}
RANKER = {"params": {"min_data_in_leaf": 5}, "num_rounds": 30, "early_stopping": 0, "n_seeds": 1}


def small_bundle(path: Path) -> Path:
    """The service tests' bundle recipe (tests/bentos/conftest.py): synthetic data, LightGBM ranker."""
    from recsys import training
    from recsys.data.loader import load_dataset
    from recsys.data.splits import temporal_user_split
    from recsys.registry.bundle import save_bundle

    ds = load_dataset("synthetic", DATA)
    split = temporal_user_split(ds.interactions)
    gen = training.fit_candidate_generator(split.train, split.valid, ds.items, ds.users, params=SOURCES)
    ranking, _ = training.fit_ranker(gen, split.train, split.valid, ds.items, ds.users, RANKER)
    rec = training.build_recommender(gen, ranking, ds.items, ds.users, ds.interactions, {}, "trace")
    return save_bundle(rec, path, {}, {"data": DATA}, version="trace")


def trace(call, places=PROJECT) -> list[str]:
    """The project files `call()` runs in, one entry per stay."""
    stays: list[str] = []

    def where(frame):
        while frame is not None:
            name = frame.f_code.co_filename
            if name.startswith(places):
                return os.path.relpath(name, ROOT)
            frame = frame.f_back
        return None

    def hook(frame, event, arg):
        if event not in ("call", "return"):
            return
        here = where(frame if event == "call" else frame.f_back)
        if here is not None and (not stays or stays[-1] != here):
            stays.append(here)

    sys.setprofile(hook)
    try:
        call()
    finally:
        sys.setprofile(None)
    return stays


def summary(name: str, stays: list[str], show: bool) -> None:
    files = Counter(stays)
    returns = len(stays) - len(files)
    print(f"{name}: {len(stays)} stays in {len(files)} files, {returns} returns to a file it had left")
    for path, n in files.most_common():
        print(f"    {n:>3}  {path}")
    if show:
        print("    " + " -> ".join(stays))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, help="serve this bundle (default: a small one built here)")
    parser.add_argument("--show", action="store_true", help="print each request's sequence of stays")
    parser.add_argument("--serving-only", action="store_true", help="count stays in bentos/ and recsys/serving/")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="request-path-") as tmp:
        bundle = args.bundle or small_bundle(Path(tmp) / "bundle")
        os.environ.update({"RECSYS_MODEL": str(bundle), "RECSYS_RELOAD_INTERVAL": "0", "RECSYS_WARM_UP": "false",
                           "KAFKA_BOOTSTRAP_SERVERS": "", "RECSYS_EXPERIMENT": "", "RECSYS_SHADOW_MODEL": "",
                           "RECSYS_CACHE_DIR": str(Path(tmp) / "cache"), "RECSYS_LOG_DIR": str(Path(tmp) / "logs"),
                           "RECSYS_EVENT_LOG": str(Path(tmp) / "events.jsonl")})
        from bentos.schemas import RecommendRequest
        from bentos.service import RecommenderService

        service = RecommenderService.inner()
        service.runtime.load()
        rec = service.runtime.slots["control"].current.recommender
        users = rec.warm_order()
        cached, uncached = users[0], users[1]
        rec.warm([cached])
        rec.ranked.invalidate([uncached])

        def request(user):
            return lambda: asyncio.run(service.recommend(RecommendRequest(user_id=user, k=10)))

        request(users[2])()  # first calls build lazy tables: not what a request in steady state does
        places = (PROJECT[0], str(ROOT / "recsys" / "serving") + os.sep) if args.serving_only else PROJECT
        print(f"bundle {bundle}; one /recommend (k=10) through RecommenderService.recommend, in process; places: "
              f"{'bentos/ and recsys/serving/' if args.serving_only else 'bentos/ and recsys/'}")
        summary(f"cached user ({cached})", trace(request(cached), places), args.show)
        summary(f"uncached user ({uncached})", trace(request(uncached), places), args.show)
        service.runtime.close()


if __name__ == "__main__":
    main()
