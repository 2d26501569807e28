"""The monitoring loop on planted shifts: how fast it retrains, how much quality the retrain gets back, and
how quiet it stays when nothing changed.

    python benchmarks/drift_loop.py                       # every shift + the control (~30 min on 2 cores)
    python benchmarks/drift_loop.py --scenarios season --control-windows 0

Setup: the embedded default (configs/train.yaml's data: 2,000 users, 400 hotels, 60,000 events over 180
days) trains the champion with configs/train.yaml's recipe (no store features). The marketplace then goes
on week by week (recsys/data/shifts.py); a planted shift starts one week after the training data ends.
Each week runs what `python run.py --pipeline retrain` runs, with the values of configs/retrain.yaml (drift
thresholds, policy, promotion rule, sliding training window): check_window -> decide -> (train a challenger
on the last `training_days` with the production model's recipe, refit -> champion vs challenger on the
week -> promote) -- the same recsys functions the steps call, without ZenML around them.

Per shift it reports: the weeks from the shift's start until a retrain triggered; the champion's NDCG@10
before the shift and on the shifted weeks; after a promotion, the champion, the promoted model and a
reference model on the two following weeks. The reference is "a model trained on post-shift data
directly": the same recipe on the same 90 days, simulated with the shift in force all along, serving the
real histories. Recovery = (promoted - champion) / (reference - champion) on those weeks (target >= 80%).
The control runs `--control-windows` weeks without a shift: retrains triggered (target 0) and every
signal that fired (false alarms).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from recsys import training  # noqa: E402
from recsys.data.shifts import generate_days  # noqa: E402
from recsys.data.synthetic import generate_travel_data  # noqa: E402
from recsys.data.windows import EventSource  # noqa: E402
from recsys.evaluation.window import add_history, score_window  # noqa: E402
from recsys.monitoring.drift import Thresholds, check_window  # noqa: E402
from recsys.monitoring.policy import RetrainPolicy, decide  # noqa: E402
from recsys.registry.bundle import load_bundle, save_bundle  # noqa: E402
from recsys.registry.promotion import PromotionRule, duel  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WEEK = pd.Timedelta(days=7)


def config(name: str) -> dict:
    return yaml.safe_load((ROOT / "configs" / name).read_text())


def step(cfg: dict, name: str) -> dict:
    return (cfg.get("steps", {}).get(name) or {}).get("parameters") or {}


class Production:
    """The model the loop would be serving: a bundle, its registration figure and data end."""

    def __init__(self, path: Path, ndcg: float, data_end: pd.Timestamp, version: str):
        self.path, self.ndcg, self.data_end, self.version = path, ndcg, data_end, version

    def load(self):
        return load_bundle(self.path)[0]


def train_champion(params: dict, recipe: dict, workdir: Path) -> Production:
    from recsys.data.splits import split_interactions
    from recsys.evaluation.protocol import evaluate

    base = generate_travel_data(**params)
    parts = split_interactions(base.interactions, "temporal_user", (0.8, 0.1, 0.1))
    evaluated, settings, _ = training.train_staged(parts.train, parts.valid, base.items, base.users, recipe)
    ndcg = float(evaluate({"m": evaluated}, parts.test, 10).loc["m", "ndcg@10"])
    model = training.refit_staged(evaluated, settings, recipe, parts.train, parts.valid, parts.test, base.items,
                                  base.users)
    path = save_bundle(model, workdir / "champion", {}, {})
    return Production(path, ndcg, base.interactions.timestamp.max(), "champion")


def reference_model(params: dict, kind: str, start_day: int, recipe: dict, source: EventSource, at: pd.Timestamp,
                    days: int):
    """Same recipe and span, the shift in force all along, serving the real histories."""
    world_days = int(params.get("days", 180))
    simulated = generate_days(params, start_day - days, days, {"kind": kind, "after_days": -world_days},
                              replay_training_period=True)
    model, _ = training.train_on(simulated.interactions, simulated.items, simulated.users, recipe)
    real = source.read(at - pd.Timedelta(days=days), at)
    return training.build_recommender(model.generator, model.ranking, real.items, real.users, real.interactions,
                                      {"serving": model.config})


def run(kind: str, weeks: int, champion: Production, params: dict, base_recipe: dict, drift_cfg: dict,
        retrain_cfg: dict, workdir: Path, reference: bool) -> dict:
    source = EventSource("synthetic", {**params, "shift": {"kind": kind, "after_days": 7}})
    thresholds = Thresholds.parse(step(drift_cfg, "check_drift").get("thresholds"))
    policy = RetrainPolicy.model_validate(step(retrain_cfg, "decide_retrain").get("policy") or {})
    rule = PromotionRule.model_validate(step(retrain_cfg, "compare_models").get("rule") or {})
    training_days = retrain_cfg["parameters"].get("training_days") or 3650
    overrides = step(retrain_cfg, "train_challenger").get("recipe") or {}
    recipe = {name: {**base_recipe.get(name, {}), **(overrides.get(name) or {})} for name in base_recipe}
    origin, production, verdicts, last_retrain = champion.data_end, champion, [], None
    rows, promoted_at, started = [], None, time.time()
    for w in range(weeks):
        start, end = origin + w * WEEK, origin + (w + 1) * WEEK
        model = production.load()
        reference_data = source.read(production.data_end - pd.Timedelta(days=28), production.data_end)
        before, window = source.read(production.data_end, start), source.read(start, end)
        check = check_window(model, reference_data.interactions, window.interactions, window.items,
                             before.interactions, production.ndcg, thresholds, "bench", production.version,
                             (start, end), max_users=2000)
        verdict = check.verdict
        decision = decide(verdict, [v for v in verdicts if v.model_version == production.version], policy,
                          last_retrain)
        verdicts.append(verdict)
        row = {"week": w, "shifted": w >= 1, "ndcg": verdict.signal("outcome_ndcg").value,
               "fired": ",".join(verdict.fired()) or "-", "retrain": decision.retrain, "promoted": False}
        if decision.retrain:
            last_retrain = end
            data = source.read(start - pd.Timedelta(days=training_days), start)
            challenger, settings = training.train_on(data.interactions, window.items, data.users, recipe)
            popularity = pd.concat([reference_data.interactions, before.interactions]).item_id.value_counts()
            comparison = duel(production.load(), challenger, before.interactions, window.interactions, popularity, rule)
            row["challenger"] = comparison.challenger["ndcg@10"]
            row["why"] = "; ".join(r for r in comparison.reasons if r.startswith("FAIL")) or "won"
            if comparison.promote:
                challenger = training.absorb_window(challenger, settings, recipe, data.interactions,
                                                    window.interactions, window.items, data.users)
                path = save_bundle(challenger, workdir / f"{kind}-{w}", {}, {})
                production = Production(path, comparison.challenger["ndcg@10"], end, f"{kind}-{w}")
                row["promoted"], promoted_at = True, w if promoted_at is None else promoted_at
        rows.append(row)
        print(f"  {kind} week {w}: " + " ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
                                                  for k, v in row.items() if k != "week"), flush=True)
    result = {"kind": kind, "rows": pd.DataFrame(rows), "promoted_at": promoted_at, "seconds": time.time() - started}
    if promoted_at is not None and reference and promoted_at + 2 < weeks:
        result["recovery"] = recovery(kind, promoted_at, origin, champion, production, source, params, recipe,
                                      training_days)
    return result


def recovery(kind, promoted_at, origin, champion, production, source, params, recipe, training_days) -> dict:
    """NDCG@10 of champion, promoted and reference models on the two weeks after the promotion."""
    at = origin + (promoted_at + 1) * WEEK
    start_day = int(round((at - pd.Timestamp(params.get("start", "2025-01-01"), tz="UTC")) / pd.Timedelta(days=1)))
    models = {"champion": champion.load(), "promoted": production.load(),
              "reference": reference_model(params, kind, start_day, recipe, source, at, int(min(training_days, 90)))}
    figures = {name: [] for name in models}
    for name, model in models.items():
        known_until = {"champion": champion.data_end, "promoted": production.data_end, "reference": at}[name]
        add_history(model, source.read(known_until, at).interactions)
        for w in range(2):
            window = source.read(at + w * WEEK, at + (w + 1) * WEEK).interactions
            figures[name].append(score_window(model, window, 10).metrics["ndcg@10"])
            add_history(model, window)
    mean = {name: float(np.mean(values)) for name, values in figures.items()}
    gap = mean["reference"] - mean["champion"]
    mean["recovery"] = (mean["promoted"] - mean["champion"]) / gap if gap > 0 else float("nan")
    return mean


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scenarios", nargs="*", default=["season", "launches", "taste", "price"])
    parser.add_argument("--weeks", type=int, default=6)
    parser.add_argument("--control-windows", type=int, default=10)
    parser.add_argument("--no-reference", action="store_true", help="skip the reference models (faster)")
    parser.add_argument("--training-days", type=float, help="override configs/retrain.yaml's training_days")
    args = parser.parse_args()
    train_cfg, drift_cfg, retrain_cfg = config("train.yaml"), config("drift.yaml"), config("retrain.yaml")
    if args.training_days:
        retrain_cfg["parameters"]["training_days"] = args.training_days
    params = dict(train_cfg["parameters"]["source_params"])
    recipe = {name: step(train_cfg, name).get("params") or {} for name in training.STAGES}
    recipe["train_retrieval"] = {**recipe["train_retrieval"], "verbose": 0}
    print(f"setup: {params}; weeks of 7 days, shift from week 1; thresholds {step(drift_cfg, 'check_drift')['thresholds']}")
    print(f"policy {step(retrain_cfg, 'decide_retrain')['policy']}; rule {step(retrain_cfg, 'compare_models')['rule']}; "
          f"training_days {retrain_cfg['parameters'].get('training_days')}; {os.cpu_count()} cores", flush=True)
    started = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        champion = train_champion(params, recipe, workdir)
        print(f"champion trained in {time.time() - started:.0f} s; NDCG@10 at registration {champion.ndcg:.4f}", flush=True)
        results = [run(kind, args.weeks, champion, params, recipe, drift_cfg, retrain_cfg, workdir,
                       not args.no_reference) for kind in args.scenarios]
        control = (run("none", args.control_windows, champion, params, recipe, drift_cfg, retrain_cfg, workdir, False)
                   if args.control_windows else None)
    print("\n| shift | weeks to retrain | champion NDCG@10 before / after shift | champion / promoted / reference "
          "(2 weeks after) | recovery | wall |")
    print("|---|---:|---|---|---:|---:|")
    for r in results:
        rows = r["rows"]
        retrained = rows[rows.retrain & rows.shifted]
        weeks_to = int(retrained.week.iloc[0]) if len(retrained) else None  # the shift starts at week 1
        pre, post = rows[~rows.shifted].ndcg.mean(), rows[rows.shifted & (rows.week <= (weeks_to or 99))].ndcg.mean()
        rec = r.get("recovery")
        after = f"{rec['champion']:.4f} / {rec['promoted']:.4f} / {rec['reference']:.4f}" if rec else "-"
        recovered = f"{rec['recovery']:.0%}" if rec else ""
        weeks = weeks_to if weeks_to is not None else f"none in {len(rows) - 1}"
        print(f"| {r['kind']} | {weeks} | {pre:.4f} / {post:.4f} | {after} | {recovered} | {r['seconds']:.0f} s |")
    if control is not None:
        rows = control["rows"]
        fired = rows.fired[rows.fired != "-"]
        print(f"\ncontrol: {len(rows)} weeks, {int(rows.retrain.sum())} retrains triggered; NDCG@10 "
              f"{rows.ndcg.min():.4f}-{rows.ndcg.max():.4f} (registration {champion.ndcg:.4f}); signals that "
              f"fired: {', '.join(f'week {w}: {f}' for w, f in zip(rows.week[fired.index], fired)) or 'none'}")
    print(f"\nwall time {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
