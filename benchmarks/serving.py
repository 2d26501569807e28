"""Serving benchmark: in-process per-stage latency, then HTTP throughput and latency of the real service.

    python benchmarks/serving.py                       # 10k-item catalogue, 10 s per wrk run, 60 s soak
    python benchmarks/serving.py --items 400 --duration 10 --soak 60
    python benchmarks/serving.py --tail-sources        # also BentoML's defaults, to see where the tail comes from
    python benchmarks/serving.py --store --baseline-code DIR --profile   # the online store read per request,
                                                       # against another checkout (benchmarks/serving_store.py)

Self-contained: it takes (training once, cached under data/bench/) the benchmark bundle of
benchmarks/serving_stages.py, prints that script's in-process per-stage p50/p99, then starts three servers
on loopback ports and drives each with wrk (Debian package `wrk`) at 1, 8 and 32 connections:
  - a bare Starlette app answering a constant (the floor of a Python ASGI server on this box),
  - a BentoML no-op endpoint declared with the same service options as the recommender,
  - the recommender service (`bentoml serve bentos.service:RecommenderService`) on the bundle: POST
    /recommend for known users (cycling over a sample) with a share of unknown (cold-start) users, measured
    once its background warm-up has computed every known user's ranked list (the wait is printed, and the
    cache's hits / misses / fallbacks during the runs, from the service's /metrics).
Then a soak: /recommend at 8 connections for --soak seconds, resident memory of the server's process tree
before and after, and a hot reload during load (a new bundle version published into the served directory)
with its request failures counted. Every figure printed comes from this run; the setup line says what ran.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bentos.devserver import BentoServer, free_port  # noqa: E402

CONNECTIONS = (1, 8, 32)
COLD_SHARE = 10  # every 10th request is an unknown user (cold start)
RELOAD_SECONDS = 60  # the new version loads (~6 s on 10k items) and primes its cache (<= 20 s) under load


# ---- wrk ----
def lua_recommend(users: list[str], k: int) -> str:
    ids = ",".join(f'"{u}"' for u in users)
    return f"""local users = {{{ids}}}
local n = 0
request = function()
  n = n + 1
  local user = users[(n % #users) + 1]
  if n % {COLD_SHARE} == 0 then user = "visitor-" .. n end
  return wrk.format("POST", nil, {{["Content-Type"] = "application/json"}}, '{{"user_id":"' .. user .. '","k":{k}}}')
end
"""


LUA_CONSTANT = """wrk.method = "POST"
wrk.body = '{"user_id":"u00001"}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(url: str, script: Path, connections: int, duration: float) -> dict:
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration:.0f}s", "--latency", "--timeout", "10s",
                          "-s", str(script), url], capture_output=True, text=True, check=True).stdout
    unit = {"us": 1e-3, "ms": 1.0, "s": 1e3}

    def latency(p):
        m = re.search(rf"^\s+{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * unit[m.group(2)] if m else float("nan")

    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, socket.groups())) if socket else 0)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), "p50": latency(50),
            "p90": latency(90), "p99": latency(99), "requests": total, "errors": errors}


# ---- servers ----
class Uvicorn:
    """The bare Starlette reference app under uvicorn (one process)."""

    def __init__(self, log: Path):
        self.port, self.log = free_port(), log
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self):
        self.process = subprocess.Popen([sys.executable, "-m", "uvicorn", "benchmarks.starlette_app:app", "--port",
                                         str(self.port), "--log-level", "warning", "--no-access-log"],
                                        cwd=ROOT, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                subprocess.run(["curl", "-sf", "-XPOST", self.url + "/noop"], check=True, capture_output=True)
                return self
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        raise RuntimeError("uvicorn did not start")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=10)


def server_env(tmp: Path, model: str, **extra) -> dict[str, str]:
    env = {"RECSYS_MODEL": model, "BENTOML_HOME": str(tmp / "bentoml"), "RECSYS_LOG_DIR": str(tmp / "logs"),
           "RECSYS_EVENT_LOG": str(tmp / "events.jsonl"),
           "RECSYS_CACHE_DIR": str(tmp / "cache"), "RECSYS_RELOAD_INTERVAL": "0", "KAFKA_BOOTSTRAP_SERVERS": "",
           "RECSYS_EXPERIMENT": "", "RECSYS_SHADOW_MODEL": "", "BENTOML_DO_NOT_TRACK": "true"}
    env.update({k: str(v) for k, v in extra.items()})
    return env


# ---- the parts ----
def in_process(bundle: Path, requests: int, k: int) -> None:
    from serving_stages import report

    from recsys.registry.bundle import load_bundle

    rec, _ = load_bundle(bundle)
    print("\n== in-process (benchmarks/serving_stages.py report)")
    report(rec, requests, k)


def ranked_lists(url: str) -> dict[str, float]:
    """The service's ranked-list cache figures from /metrics (recsys_ranked_lists, control variant); they
    are refreshed by /recommend calls, so one is sent first."""
    import urllib.request

    body = json.dumps({"user_id": "visitor-metrics", "k": 1}).encode()
    urllib.request.urlopen(urllib.request.Request(url + "/recommend", body, {"Content-Type": "application/json"}))
    text = urllib.request.urlopen(url + "/metrics").read().decode()
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(r'^recsys_ranked_lists\{variant="control",what="(\w+)"\} ([\d.e+]+)$', text, re.M)}


def wait_warm(url: str, timeout: float = 600.0) -> str:
    """Block until the service's background warm-up has computed every known user's ranked list."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        time.sleep(1.0)  # the gauges update at most once a second
        stats = ranked_lists(url)
        if stats.get("warm_done") == 1:
            return (f"warm-up done after {time.monotonic() - started:.0f} s: {stats['entries']:.0f} ranked lists, "
                    f"{stats['bytes'] / 2**20:.0f} MiB")
    raise RuntimeError(f"warm-up not done after {timeout:.0f} s")


def http(bundle: Path, users: list[str], tmp: Path, duration: float, k: int, tail_sources: bool) -> None:
    rec_lua, const_lua = tmp / "recommend.lua", tmp / "constant.lua"
    rec_lua.write_text(lua_recommend(users, k))
    const_lua.write_text(LUA_CONSTANT)
    targets = [("starlette no-op", None, {}), ("bentoml no-op", "benchmarks.noop_service:NoopService", {}),
               ("/recommend", "bentos.service:RecommenderService", {})]
    if tail_sources:  # BentoML's defaults: OpenTelemetry spans and access log per request, no gc.freeze
        defaults = {"RECSYS_ACCESS_LOG": "true", "RECSYS_TRACE_API": "true", "RECSYS_GC_FREEZE": "false"}
        targets[2:2] = [("bentoml no-op, defaults", "benchmarks.noop_service:NoopService", defaults)]
        targets += [("/recommend, defaults", "bentos.service:RecommenderService", defaults)]
    rows = []
    for name, service, extra in targets:
        env = server_env(tmp / re.sub(r"\W+", "-", name), str(bundle), **extra)
        if service is None:
            ctx, path, script = Uvicorn(tmp / "uvicorn.log"), "/noop", const_lua
        else:
            ctx = BentoServer(env, tmp / f"{re.sub(r'[^a-z]+', '-', name)}.log", service=service)
            path, script = ("/noop", const_lua) if "noop" in service else ("/recommend", rec_lua)
        with ctx as server:
            if path == "/recommend":
                print(f"{name}: {wait_warm(server.url)}", flush=True)
                before = ranked_lists(server.url)
            wrk(server.url + path, script, 8, 3)  # warm-up
            for c in CONNECTIONS:
                rows.append({"target": name, "connections": c, **wrk(server.url + path, script, c, duration)})
            if path == "/recommend":
                after = ranked_lists(server.url)
                done = {w: after[w] - before[w] for w in ("hits", "misses", "fallbacks", "explain_passes")}
                print(f"{name}: ranked lists during the runs: {done} (hit ratio "
                      f"{done['hits'] / max(done['hits'] + done['misses'] + done['fallbacks'], 1):.3f}; an explain "
                      f"pass is a hit whose deeper page needed the list recomputed; unknown users never use them)")
    print(f"\n== HTTP: wrk -t1 -cN -d{duration:.0f}s, one BentoML worker, client and server on the same "
          f"{os.cpu_count()} cores")
    print(f"{'target':<26}{'conn':>5}{'req/s':>10}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs no-op':>10}")
    noop = {r["connections"]: r["rps"] for r in rows if r["target"] == "bentoml no-op"}
    for r in rows:
        ratio = r["rps"] / noop[r["connections"]] if r["target"].startswith("/recommend") else float("nan")
        print(f"{r['target']:<26}{r['connections']:>5}{r['rps']:>10.0f}{r['p50']:>9.2f}{r['p90']:>9.2f}"
              f"{r['p99']:>9.2f}{r['errors']:>8}{ratio:>10.2f}")


def soak(bundle: Path, users: list[str], tmp: Path, seconds: float, k: int) -> None:
    """Memory over a long run, then a hot reload under load."""
    root = tmp / "bundles"
    root.mkdir()
    shutil.copytree(bundle, root / "v1")
    script = tmp / "soak.lua"
    script.write_text(lua_recommend(users, k))
    env = server_env(tmp / "soak", str(root), RECSYS_RELOAD_INTERVAL="1")
    with BentoServer(env, tmp / "soak.log") as server:
        print(f"\n== soak server: {wait_warm(server.url)}")
        wrk(server.url + "/recommend", script, 8, 10)  # warm-up: caches, allocator, impression log fill
        before = server.pid_tree_rss()
        result = wrk(server.url + "/recommend", script, 8, seconds)
        after = server.pid_tree_rss()
        print(f"\n== soak: /recommend, 8 connections, {seconds:.0f} s after a 10 s warm-up")
        print(f"{result['requests']} requests, {result['errors']} errors, {result['rps']:.0f} req/s, "
              f"p99 {result['p99']:.1f} ms; resident memory (server process tree) {before / 2**20:.0f} MiB -> "
              f"{after / 2**20:.0f} MiB ({100 * (after - before) / before:+.1f}%)")

        # Hot reload under load: publish a new version (same model files, new version) mid-run.
        def promote():
            time.sleep(5)
            partial = root / ".v2.partial"
            shutil.copytree(bundle, partial)
            meta = json.loads((partial / "bundle.json").read_text())
            meta.update(version="reloaded-v2", created_at="9999-01-01T00:00:00+00:00")
            (partial / "bundle.json").write_text(json.dumps(meta))
            partial.rename(root / "v2")

        thread = threading.Thread(target=promote)
        thread.start()
        result = wrk(server.url + "/recommend", script, 8, RELOAD_SECONDS)
        thread.join()
        import urllib.request

        body = json.dumps({"user_id": users[0], "k": 1}).encode()
        request = urllib.request.Request(server.url + "/recommend", body, {"Content-Type": "application/json"})
        version = json.loads(urllib.request.urlopen(request).read())["model_version"]
        print(f"== hot reload during load: {RELOAD_SECONDS} s at 8 connections, new version published at 5 s "
              f"(loaded, warmed and primed with the recent users' ranked lists in the background, then swapped): "
              f"{result['requests']} requests, {result['errors']} failed, p99 {result['p99']:.1f} ms; "
              f"serving {version!r} afterwards")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=10_000, help="catalogue size of the benchmark bundle")
    parser.add_argument("--bundle", type=Path, help="serve this bundle instead of the benchmark one")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run")
    parser.add_argument("--soak", type=float, default=60.0, help="soak seconds (0: skip soak and reload)")
    parser.add_argument("--requests", type=int, default=1000, help="in-process requests per user kind")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--tail-sources", action="store_true", help="also run BentoML's default settings")
    parser.add_argument("--skip-in-process", action="store_true", help="HTTP (and soak) only")
    parser.add_argument("--store", action="store_true", help="a ranker with Feast store features and the users' "
                        "real-time rows read per request (benchmarks/serving_store.py); no in-process part, no soak")
    parser.add_argument("--baseline-code", type=Path, help="--store: also serve this checkout's code, interleaved")
    parser.add_argument("--rounds", type=int, default=3, help="--store: interleaved rounds")
    parser.add_argument("--connections", type=int, nargs="+", default=[8], help="--store: wrk connection counts")
    parser.add_argument("--profile", action="store_true", help="--store: py-spy shares of each worker's samples")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk not found: apt-get install -y wrk")
    from serving_stages import bench_bundle

    bundle = (args.bundle or bench_bundle(args.items)).resolve()
    import pandas as pd

    history = pd.read_parquet(bundle / "recommender" / "history.parquet", columns=["user_id"])
    users = list(pd.unique(history.user_id))[:5000]
    n_items = len(pd.read_parquet(bundle / "recommender" / "items.parquet", columns=["item_id"]))
    load = os.getloadavg()
    print(f"setup: bundle {bundle} ({n_items} items), {len(users)} request users; "
          f"{os.cpu_count()} cores ({platform.machine()}), load average {load[0]:.2f} (shared box: other "
          f"processes run beside this one); Python {platform.python_version()}; "
          f"{subprocess.run(['wrk', '-v'], capture_output=True, text=True).stdout.split(chr(10))[0]}")
    if args.store:
        from serving_store import compare

        with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
            compare(args.baseline_code, users, args.k, args.duration, args.rounds, args.connections, args.profile,
                    Path(tmp), args.items)
        load = os.getloadavg()
        print(f"\nload average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)")
        return
    if not args.skip_in_process:
        in_process(bundle, args.requests, args.k)
    with tempfile.TemporaryDirectory(prefix="serving-bench-") as tmp:
        http(bundle, users, Path(tmp), args.duration, args.k, args.tail_sources)
        if args.soak > 0:
            soak(bundle, users, Path(tmp), args.soak, args.k)
    load = os.getloadavg()
    print(f"\nload average at the end: {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)")


if __name__ == "__main__":
    main()
