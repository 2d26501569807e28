"""Feature-store benchmarks: the batch job's throughput, online read latency, and what the features buy.

1. job: wall time, events/s and peak RSS (the whole process tree: Python, DuckDB, the Spark JVM) of the
   feature job on synthetic travel data of each size, reading Parquet, on each engine: DuckDB (in-process)
   and PySpark (local[*]). Each run is a fresh child process, so one engine's memory never counts for the
   other, and the Spark figure excludes the session start (printed apart);
2. online: latency of one user's online read (all user views, one lookup) on sqlite and on Redis (a
   redis-server started here on a loopback port), through OnlineFeatures (freshness check included) and
   through Feast's get_online_features alone;
3. quality: the train path's ranker with and without the store's windowed features under the MovieLens
   protocol of benchmarks/quality_movielens.py (whose functions this reuses), and on the synthetic data.
   The feature job sees only the train interactions, so the comparison stays within that protocol.

    python benchmarks/features.py                                  # all three (10M events: minutes)
    python benchmarks/features.py --sections job --sizes 1000000 10000000 --engines duckdb spark
    python benchmarks/features.py --sections online quality --no-two-tower

The box is shared: the load average is printed before and after each section.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from recsys.features.definitions import BATCH_VIEWS, USER_ACTIVITY, FeatureSpec, features_dir  # noqa: E402
from tests.feature_repo.repo import RedisServer, copy_repo, write_features  # noqa: E402

SPARK_CONF = {"spark.sql.shuffle.partitions": 8,  # 2 cores: a few tasks per core, not Spark's 200
              "spark.ui.showConsoleProgress": "false"}


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def synthetic(n_events: int, cache: Path):
    """Travel data with n_events (users = n/20, items = n/200 up to 5,000: the generator's cost grows with
    sessions x items), cached as Parquet."""
    from recsys.data.synthetic import generate_travel_data

    folder = cache / str(n_events)
    if not (folder / "items.parquet").exists():
        folder.mkdir(parents=True, exist_ok=True)
        start = time.perf_counter()
        ds = generate_travel_data(n_users=max(100, n_events // 20), n_items=min(5000, max(400, n_events // 200)),
                                  n_events=n_events, seed=1)
        ds.interactions.to_parquet(folder / "interactions.parquet")
        ds.items.to_parquet(folder / "items.parquet")
        print(f"  generated {n_events:,} events in {time.perf_counter() - start:.0f} s -> {folder}")
    return folder


class PeakRSS:
    """Peak resident memory of a process and all its descendants (sampled every 0.1 s with psutil)."""

    def __init__(self, pid: int):
        import psutil

        self.root, self.peak, self._stop = psutil.Process(pid), 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                tree = [self.root, *self.root.children(recursive=True)]
                self.peak = max(self.peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            self._stop.wait(0.1)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def bench_job(sizes, cache: Path, engines, master: str, driver_memory: str) -> None:
    print(f"\n== feature job ({load()}) ==")
    for n in sizes:
        folder = synthetic(n, cache)
        for engine in engines:
            out = Path(tempfile.mkdtemp(prefix="features-", dir=cache))
            command = [sys.executable, __file__, "--job-worker", engine, str(folder), str(out), "--master", master,
                       "--spark-driver-memory", driver_memory]
            before = load()
            child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
            peak = PeakRSS(child.pid)
            output, _ = child.communicate()
            rss = peak.stop()
            if child.returncode:
                raise RuntimeError(f"{engine} job failed ({child.returncode}) on {n:,} events")
            result = json.loads(output.strip().splitlines()[-1])
            written = sum(p.stat().st_size for p in out.rglob("*.parquet"))
            extra = f"; session start {result['session_seconds']:.0f} s" if engine == "spark" else ""
            print(f"  {engine:6} {n:>11,} events: {result['seconds']:7.1f} s  {n / result['seconds']:>9,.0f} events/s  "
                  f"peak RSS {rss / 1e9:5.2f} GB  ({written / 1e6:,.0f} MB Parquet, rows {result['rows']}{extra})")
            print(f"         load before: {before}; after: {load()}")
            shutil.rmtree(out, ignore_errors=True)


def job_worker(engine: str, folder: Path, out: Path, master: str, driver_memory: str) -> None:
    """One engine's run in this (child) process; prints its result as a JSON line."""
    items = pd.read_parquet(folder / "items.parquet")
    spec = FeatureSpec().resolve(pd.read_parquet(folder / "interactions.parquet", columns=["event_type"]), items)
    events, items_path, session_seconds = folder / "interactions.parquet", folder / "items.parquet", 0.0
    if engine == "duckdb":
        from recsys.features.batch import run_duckdb_job

        start = time.perf_counter()
        result = run_duckdb_job(events, items_path, spec, out)
    else:
        from recsys.features.spark_job import run_spark_job, spark_session

        start = time.perf_counter()
        spark = spark_session(master, "recsys-features-bench", {**SPARK_CONF, "spark.driver.memory": driver_memory})
        spark.sparkContext.setLogLevel("ERROR")
        session_seconds = time.perf_counter() - start
        start = time.perf_counter()
        result = run_spark_job(spark, events, items_path, spec, out)
    seconds = time.perf_counter() - start
    rows = {view: sum(pq.ParquetFile(p).metadata.num_rows for p in (out / view).rglob("*.parquet"))
            for view in BATCH_VIEWS}
    print(json.dumps({"seconds": seconds, "rows": rows, "session_seconds": session_seconds,
                      "last_snapshot": result["last_snapshot"]}))


def percentiles(samples_s) -> str:
    ms = np.asarray(samples_s) * 1000
    return f"p50 {np.percentile(ms, 50):6.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms  (n={len(ms)})"


def bench_online(n_reads: int) -> None:
    from recsys.data.loader import load_dataset
    from recsys.features.online import OnlineFeatures
    from recsys.features.provider import USER_SERVICE
    from recsys.features.store import apply_repo, latest_snapshot, materialize, open_store

    print(f"\n== online read of one user ({load()}) ==")
    ds = load_dataset("synthetic", {"n_users": 2000, "n_items": 400, "n_events": 60000, "seed": 42})
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as redis_server:
        repo = copy_repo(Path(tmp))
        write_features(repo, ds.interactions, ds.items)
        spec = FeatureSpec.read(features_dir(repo))
        last = latest_snapshot(features_dir(repo))
        user = ds.interactions.user_id.value_counts().index[0]
        os.environ["RECSYS_REDIS"] = f"127.0.0.1:{redis_server.port}"
        for name, fs_yaml in (("sqlite", "feature_store.yaml"), ("redis", "feature_store_redis.yaml")):
            apply_repo(repo, fs_yaml)
            store = open_store(repo, fs_yaml)
            materialize(store, last)
            provider = OnlineFeatures(spec, repo, fs_yaml, item_ids=[], clock="snapshot", store=store)
            service = store.get_feature_service(USER_SERVICE)
            n_features = len(provider.user_columns)
            for label, read in (("OnlineFeatures.user_features", lambda: provider.user_features([user])),
                                ("feast get_online_features   ", lambda: store.get_online_features(
                                    features=service, entity_rows=[{"user_id": user}]).to_dict())):
                for _ in range(100):
                    read()
                samples = []
                for _ in range(n_reads):
                    start = time.perf_counter()
                    read()
                    samples.append(time.perf_counter() - start)
                print(f"  {name:6} {label} ({n_features} features, 2 views): {percentiles(samples)}")
            assert provider.counts["errors"] == 0 and provider.counts[f"{USER_ACTIVITY}.fresh"] > 0


def bench_quality(dataset: str, two_tower: bool, cache_dir: str) -> None:
    import quality_movielens as qm
    from recsys.data.loader import load_dataset
    from recsys.data.splits import temporal_user_split
    from recsys.evaluation.protocol import format_table
    from recsys.features.provider import PointInTimeFeatures
    from recsys.features.store import apply_repo

    print(f"\n== ranking quality with and without the store's windowed features: {dataset} ({load()}) ==")
    start = time.perf_counter()
    if dataset == "movielens":
        ds, split = qm.load_split(cache_dir)
        params = qm.step_params(ROOT / "configs" / "train_movielens.yaml")
        spec = {"attributes": ["genres"], "numeric": ["year"]}  # only "rating" events: counts, no ratios
    else:
        ds = load_dataset("synthetic", {"n_users": 2000, "n_items": 400, "n_events": 60000, "seed": 42})
        split = temporal_user_split(ds.interactions, (0.8, 0.1, 0.1))
        params = qm.step_params(ROOT / "configs" / "train.yaml")
        spec = {}  # the defaults: view / click / booking, category and destination, price
    generator = qm.fit_generator(ds, split, params, two_tower)
    models, timings = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        repo = copy_repo(Path(tmp))
        write_features(repo, split.train, ds.items, spec)  # from train events only
        apply_repo(repo)
        for name, store in (("staged", None), ("staged+store", PointInTimeFeatures(repo))):
            t = time.perf_counter()
            models[name], importance = qm.fit_staged(ds, split, generator, params("train_ranker"), store)
            timings[name] = time.perf_counter() - t
            if store is not None:
                top = importance[importance.feature.isin(store.user_columns_scalar + store.item_columns)
                                 | importance.feature.str.contains("store_|_gap_")].head(8)
                print("  top store features by gain:\n" + top.to_string(index=False))
        table = qm.score(models, ds, split)
    print(format_table(table))
    print("  ranker fit: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
          + f"; section {time.perf_counter() - start:.0f} s ({load()})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sections", nargs="+", default=["job", "online", "quality"],
                        choices=["job", "online", "quality"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1_000_000, 10_000_000])
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"], choices=["duckdb", "spark"])
    parser.add_argument("--master", default="local[*]", help="spark.master for the job section")
    parser.add_argument("--spark-driver-memory", default="6g", help="local mode: the JVM's heap (executors too)")
    parser.add_argument("--job-worker", nargs=3, metavar=("ENGINE", "DATA", "OUT"), help=argparse.SUPPRESS)
    parser.add_argument("--cache", default=str(ROOT / "data" / "bench" / "features"))
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--quality-datasets", nargs="+", default=["movielens", "synthetic"])
    parser.add_argument("--cache-dir", default=str(ROOT / "data" / "raw"), help="MovieLens cache")
    parser.add_argument("--no-two-tower", action="store_true", help="candidate sources without the TFRS model")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.job_worker:
        engine, data, out = args.job_worker
        return job_worker(engine, Path(data), Path(out), args.master, args.spark_driver_memory)
    print(f"setup: {os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 1e9:.0f} GB "
          f"RAM, Python {sys.version.split()[0]}; {load()}")
    start = time.perf_counter()
    if "job" in args.sections:
        bench_job(args.sizes, Path(args.cache), args.engines, args.master, args.spark_driver_memory)
    if "online" in args.sections:
        bench_online(args.reads)
    if "quality" in args.sections:
        for dataset in args.quality_datasets:
            bench_quality(dataset, not args.no_two_tower, args.cache_dir)
    print(f"\nwall time {time.perf_counter() - start:.0f} s; {load()}")


if __name__ == "__main__":
    main()
