"""The smoke test of a built recommender service, over HTTP: parity with offline inference, a short load
probe against a latency budget, an OpenAPI fuzz.

Where this sits: the deploy pipeline's smoke_test step serves the built bento (`bentoml serve <bento tag>`
on a free loopback port), waits for /readyz, then runs `run_checks` against it; any failure stops the
pipeline before anything is recorded or promoted. The service tests use `fuzz` against `bentoml serve` of
the project too. No BentoML here: the server is a URL.

- parity: for a sample of known users and a few unknown ones, /recommend answers exactly what
  `Recommender.recommend_batch` (what the evaluation step scores) returns for the same bundle: item ids and
  stages in order, scores to 1e-9. Run first, on users nobody has asked for yet (a served list records
  impressions, which the fatigue filter reads).
- latency: `concurrency` clients send /recommend for sampled users (known and unknown) for `seconds`;
  p50/p99 and throughput; fails on any non-200 answer or a p99 above the budget.
- fuzz: schemathesis (`schemathesis run`, the tool's documented interface) with the configured phases
  (all four by default: examples, coverage, fuzzing, stateful) and checks (server errors at least) against
  the published OpenAPI schema; fails on any failed check.
Hand-written: the load probe (threads and a clock, ~20 lines) because wrk/locust would need a script per
request body and a second process to parse; the figures are a smoke check, benchmarks/serving.py measures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import requests
from pydantic import BaseModel, ConfigDict, Field

PHASES = ("examples", "coverage", "fuzzing", "stateful")


class LoadSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(5.0, gt=0, description="length of the probe")
    concurrency: int = Field(2, ge=1, description="clients sending requests back to back")
    p99_ms: float = Field(300.0, gt=0, description="latency budget: p99 of /recommend over the probe")


class FuzzSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phases: list[str] = Field(default_factory=lambda: list(PHASES))
    checks: list[str] = Field(default_factory=lambda: ["not_a_server_error"])
    max_examples: int = Field(20, ge=1, description="test cases per operation and phase")
    seed: int = 0
    timeout_seconds: float = Field(600.0, gt=0)


class SmokeSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ready_timeout_seconds: float = Field(180.0, gt=0, description="for /readyz after start")
    known_users: int = Field(30, ge=0, description="known users sampled for parity")
    unknown_users: int = Field(3, ge=0, description="unknown users (cold start) for parity")
    k: int = Field(10, ge=1, le=100)
    seed: int = 0
    load: LoadSettings = LoadSettings()
    fuzz: FuzzSettings = FuzzSettings()


class SmokeReport(BaseModel):
    passed: bool
    failures: list[str]
    figures: dict[str, float | int | str]

    def summary(self) -> str:
        figures = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in self.figures.items())
        return f"smoke test {'passed' if self.passed else 'FAILED'}: {figures}" + (
            "".join(f"\n  FAIL: {f}" for f in self.failures))


def sample_users(recommender, settings: SmokeSettings) -> tuple[list[str], list[str]]:
    """(known users, unknown users): a seeded sample of the bundle's users, and ids it has never seen."""
    users = np.asarray(recommender.history.users, dtype=object)
    rng = np.random.default_rng(settings.seed)
    known = list(rng.choice(users, size=min(settings.known_users, len(users)), replace=False)) if len(users) else []
    return [str(u) for u in known], [f"smoke-unknown-{i}" for i in range(settings.unknown_users)]


def check_parity(url: str, recommender, users: list[str], k: int) -> tuple[dict, list[str]]:
    """Served lists against `recommender.recommend_batch` for `users` (the same bundle, loaded offline)."""
    offline = recommender.recommend_batch(users, k=k)
    failures = []
    with requests.Session() as http:
        for user in users:
            response = http.post(f"{url}/recommend", json={"user_id": user, "k": k}, timeout=30)
            if response.status_code != 200:
                failures.append(f"parity: /recommend for {user} answered {response.status_code}: {response.text[:200]}")
                continue
            served = response.json()["items"]
            expected = offline[offline.user_id == user]
            if [i["item_id"] for i in served] != list(expected.item_id) or \
                    [i["stage"] for i in served] != list(expected.stage) or \
                    not np.allclose([i["score"] for i in served], list(expected.score), rtol=1e-9, atol=1e-12):
                failures.append(f"parity: {user} served {[i['item_id'] for i in served]}, offline "
                                f"{list(expected.item_id)}")
    return {"parity_users": len(users), "parity_mismatches": len(failures)}, failures


def load_probe(url: str, users: list[str], settings: LoadSettings, k: int = 10) -> tuple[dict, list[str]]:
    """`settings.concurrency` clients, back to back, for `settings.seconds`: latency and errors."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.perf_counter() + settings.seconds

    def client(offset: int) -> None:
        mine, bad = [], []
        with requests.Session() as http:
            i = offset
            while time.perf_counter() < deadline:
                user = users[i % len(users)]
                i += settings.concurrency
                started = time.perf_counter()
                try:
                    status = http.post(f"{url}/recommend", json={"user_id": user, "k": k}, timeout=30).status_code
                except requests.RequestException as error:
                    status = type(error).__name__
                mine.append(time.perf_counter() - started)
                if status != 200:
                    bad.append(f"{user}: {status}")
        with lock:
            latencies.extend(mine)
            errors.extend(bad)

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,)) for n in range(settings.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ms = np.asarray(latencies) * 1000.0
    figures = {"load_requests": len(ms), "load_errors": len(errors), "load_concurrency": settings.concurrency,
               "load_rps": len(ms) / elapsed, "p50_ms": float(np.percentile(ms, 50)) if len(ms) else float("nan"),
               "p99_ms": float(np.percentile(ms, 99)) if len(ms) else float("nan"), "p99_budget_ms": settings.p99_ms}
    failures = [f"load: {len(errors)} of {len(ms)} requests failed, e.g. {errors[:3]}"] if errors else []
    if not len(ms):
        failures.append("load: no request completed")
    elif figures["p99_ms"] > settings.p99_ms:
        failures.append(f"load: p99 {figures['p99_ms']:.1f} ms over the {settings.p99_ms:.0f} ms budget")
    return figures, failures


def fuzz(url: str, settings: FuzzSettings, workdir: str | Path | None = None) -> tuple[dict, list[str]]:
    """schemathesis against `<url>/docs.json` (the OpenAPI schema BentoML publishes): figures and failures."""
    unknown = set(settings.phases) - set(PHASES)
    if unknown:
        raise ValueError(f"unknown schemathesis phases {sorted(unknown)}; known: {list(PHASES)}")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "schemathesis.cli", "run", f"{url}/docs.json",
                   "--phases", ",".join(settings.phases), "--checks", ",".join(settings.checks),
                   "--max-examples", str(settings.max_examples), "--seed", str(settings.seed),
                   "--workers", "1", "--request-timeout", "30", "--report", "ndjson",
                   "--report-ndjson-path", str(report)]
        started = time.perf_counter()
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=settings.timeout_seconds,
                                  cwd=tmp)  # schemathesis keeps a .schemathesis cache in its working dir
        except subprocess.TimeoutExpired:
            return {"fuzz_seconds": settings.timeout_seconds}, [f"fuzz: schemathesis ran over "
                                                                f"{settings.timeout_seconds:.0f} s"]
        seconds = time.perf_counter() - started
        figures = {"fuzz_seconds": seconds, **fuzz_figures(report)}
    failures = []
    if done.returncode != 0 or figures.get("fuzz_failures", 0):
        failures.append(f"fuzz: schemathesis exited {done.returncode} with {figures.get('fuzz_failures')} "
                        f"failures:\n{failure_section(done.stdout + done.stderr)}")
    return figures, failures


def failure_section(output: str, limit: int = 4000) -> str:
    """The FAILURES part of schemathesis' output (each failure with a curl command to reproduce it), or its
    last lines when there is none (e.g. the schema did not load)."""
    lines = output.strip().splitlines()
    start = next((i for i, line in enumerate(lines) if "FAILURES" in line), None)
    end = next((i for i, line in enumerate(lines) if "SUMMARY" in line), len(lines))
    text = "\n".join(lines[start:end] if start is not None and start < end else lines[-25:])
    return text[:limit]


def fuzz_figures(ndjson: Path) -> dict:
    """Test cases, failed checks and server errors from schemathesis' NDJSON event report, and how each
    phase ended (e.g. `examples:skip`: the schema has no examples)."""
    cases = failures = server_errors = 0
    phases = []
    if not ndjson.is_file():
        return {"fuzz_cases": 0, "fuzz_failures": 0, "fuzz_server_errors": 0, "fuzz_phase_status": ""}
    for line in ndjson.read_text().splitlines():
        event = json.loads(line)
        if "ScenarioFinished" in event:
            recorder = event["ScenarioFinished"].get("recorder") or {}
            cases += len(recorder.get("cases") or {})
            for results in (recorder.get("checks") or {}).values():
                for check in results:
                    if str(check.get("status")).lower() == "failure":
                        failures += 1
                        server_errors += check.get("name") == "not_a_server_error"
        elif "PhaseFinished" in event:
            phase = event["PhaseFinished"]
            if phase["phase"]["name"] in PHASES:
                phases.append(f"{phase['phase']['name']}:{phase['status']}")
    return {"fuzz_cases": cases, "fuzz_failures": failures, "fuzz_server_errors": server_errors,
            "fuzz_phase_status": ",".join(phases)}


def run_checks(url: str, recommender, settings: SmokeSettings, workdir: str | Path | None = None) -> SmokeReport:
    """Every check against the ready service at `url`; `recommender` is the served bundle loaded offline."""
    known, unknown = sample_users(recommender, settings)
    figures: dict = {}
    failures: list[str] = []
    for check in (lambda: check_parity(url, recommender, known + unknown, settings.k),
                  lambda: load_probe(url, known + unknown or ["smoke-load"], settings.load, settings.k),
                  lambda: fuzz(url, settings.fuzz, workdir)):
        found, failed = check()
        figures.update(found)
        failures += failed
    return SmokeReport(passed=not failures, failures=failures, figures=figures)
