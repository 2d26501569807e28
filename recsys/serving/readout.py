"""Experiment readout: compare variants from the experiment log with a two-proportion z-test.

    python -m recsys.serving.readout --log data/experiments/*.jsonl [--experiment NAME] [--control A]
        [--success click booking] [--unit impression|user] [--alpha 0.05] [--json]

The control is the variant named `control` (what the service calls the group served the production
model) unless --control names another; a log without such a variant needs --control.

Trials and successes per variant, from the JSON lines `recsys.serving.experiments.ExperimentLog` writes:
- unit "impression" (default): a trial is a distinct (user, item) pair shown under the variant; a success is
  such a pair followed (at or after the first impression) by a feedback event of a success type;
- unit "user": a trial is a user exposed to the variant; a success is a user with at least one success.
Items shown to one user are correlated, so the impression-level test overstates certainty when users see
many items; the user-level test is the conservative check.

Against the control each variant gets: rate, absolute difference with a Wald CI (unpooled SE), relative lift
with a CI from the delta method on log(rate ratio), z from the pooled SE and a two-sided p-value; the
chi-square test of independence over all variants (scipy, no continuity correction; equals z^2 for two).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import sys

import numpy as np
import pandas as pd
from scipy import stats

SUCCESS_TYPES = ("click", "add_to_cart", "booking", "purchase")
DEFAULT_CONTROL = "control"  # bentos/runtime.py names the production group so


def two_proportion_test(s1: int, n1: int, s2: int, n2: int, alpha: float = 0.05) -> dict:
    """Variant 2 against control 1. Raises ValueError for empty groups."""
    if min(n1, n2) <= 0:
        raise ValueError("both groups need at least one trial")
    p1, p2 = s1 / n1, s2 / n2
    z_crit = stats.norm.ppf(1 - alpha / 2)
    pooled = (s1 + s2) / (n1 + n2)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (p2 - p1) / se_pooled if se_pooled > 0 else 0.0
    se = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    out = {"rate_control": p1, "rate": p2, "diff": p2 - p1, "diff_low": p2 - p1 - z_crit * se,
           "diff_high": p2 - p1 + z_crit * se, "z": z, "p_value": float(2 * stats.norm.sf(abs(z))),
           "lift": (p2 / p1 - 1) if p1 > 0 else float("nan"), "lift_low": float("nan"), "lift_high": float("nan")}
    if s1 > 0 and s2 > 0:
        se_log = math.sqrt((1 - p1) / s1 + (1 - p2) / s2)
        log_rr = math.log(p2 / p1)
        out["lift_low"] = math.exp(log_rr - z_crit * se_log) - 1
        out["lift_high"] = math.exp(log_rr + z_crit * se_log) - 1
    return out


def read_log(paths) -> pd.DataFrame:
    rows = []
    for pattern in paths:
        for path in sorted(glob.glob(str(pattern))) or [pattern]:
            with open(path) as f:
                for n, line in enumerate(f, 1):
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as err:
                        raise ValueError(f"{path}:{n}: not JSON ({err.msg})") from None
    return pd.DataFrame(rows)


def counts(log: pd.DataFrame, experiment: str | None = None, success=SUCCESS_TYPES,
           unit: str = "impression") -> pd.DataFrame:
    """Per variant: trials, successes (see module docstring), indexed by variant in first-seen order."""
    if "type" not in log.columns:
        raise ValueError("the log has no 'type' field: not an experiment log")
    imp = log[log["type"] == "impression"]
    if experiment is not None:
        imp = imp[imp["experiment"] == experiment]
    if not len(imp):
        raise ValueError(f"no impressions{f' for experiment {experiment!r}' if experiment else ''} in the log")
    if experiment is None and imp["experiment"].nunique() > 1:
        raise ValueError(f"the log holds experiments {sorted(imp['experiment'].unique())}; pick one with --experiment")
    shown = imp[["variant", "user_id", "items", "ts"]].explode("items").rename(columns={"items": "item_id"})
    shown = shown.dropna(subset=["item_id"]).groupby(["variant", "user_id", "item_id"], sort=False).ts.min().reset_index()
    fb = log[(log["type"] == "feedback") & log.get("event_type", pd.Series(dtype=object)).isin(list(success))]
    fb = fb.groupby(["user_id", "item_id"]).ts.max().rename("fb_ts").reset_index() if len(fb) else \
        pd.DataFrame(columns=["user_id", "item_id", "fb_ts"])
    pairs = shown.merge(fb, on=["user_id", "item_id"], how="left")
    pairs["success"] = pairs.fb_ts.notna() & (pairs.fb_ts >= pairs.ts)
    order = list(dict.fromkeys(imp["variant"]))
    if unit == "user":
        per_user = pairs.groupby(["variant", "user_id"], sort=False).success.any().reset_index()
        table = per_user.groupby("variant").success.agg(trials="size", successes="sum")
    elif unit == "impression":
        table = pairs.groupby("variant").success.agg(trials="size", successes="sum")
    else:
        raise ValueError(f"unit must be 'impression' or 'user', got {unit!r}")
    return table.reindex(order).astype(int)


def pick_control(table: pd.DataFrame, control: str | None = None) -> str:
    """`control`, or by default the variant named "control" (the service's name for the group that gets
    the production model), never merely the first variant logged."""
    if control is None and DEFAULT_CONTROL not in table.index:
        raise ValueError(f"no variant named {DEFAULT_CONTROL!r} in the log (variants: {list(table.index)}); "
                         "name the control with --control")
    control = control or DEFAULT_CONTROL
    if control not in table.index:
        raise ValueError(f"control {control!r} is not a variant; variants: {list(table.index)}")
    return control


def readout(table: pd.DataFrame, control: str | None = None, alpha: float = 0.05) -> tuple[pd.DataFrame, dict]:
    """(per-variant comparison against `control` (default: the variant named "control"), chi-square over all)."""
    control = pick_control(table, control)
    c = table.loc[control]
    rows = {}
    for variant, row in table.iterrows():
        rows[variant] = {"trials": int(row.trials), "successes": int(row.successes),
                         "rate": row.successes / row.trials if row.trials else float("nan")}
        if variant != control:
            test = two_proportion_test(int(c.successes), int(c.trials), int(row.successes), int(row.trials), alpha)
            rows[variant].update({k: test[k] for k in ("diff", "diff_low", "diff_high", "lift", "lift_low",
                                                         "lift_high", "z", "p_value")})
    contingency = np.array([[r.successes, r.trials - r.successes] for r in table.itertuples()])
    chi2 = {"chi2": float("nan"), "p_value": float("nan"), "dof": 0}
    if len(table) > 1 and (contingency.sum(axis=0) > 0).all():
        res = stats.chi2_contingency(contingency, correction=False)
        chi2 = {"chi2": float(res.statistic), "p_value": float(res.pvalue), "dof": int(res.dof)}
    return pd.DataFrame.from_dict(rows, orient="index"), chi2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--log", nargs="+", required=True, help="experiment log file(s) or glob(s)")
    parser.add_argument("--experiment")
    parser.add_argument("--control")
    parser.add_argument("--success", nargs="+", default=list(SUCCESS_TYPES), help="event types that count")
    parser.add_argument("--unit", choices=("impression", "user"), default="impression")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    try:
        table = counts(read_log(args.log), args.experiment, args.success, args.unit)
        control = pick_control(table, args.control)
        result, chi2 = readout(table, control, args.alpha)
    except (ValueError, OSError) as err:
        print(f"readout: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"unit": args.unit, "variants": json.loads(result.to_json(orient="index")), "chi2": chi2}))
        return 0
    level = int(round(100 * (1 - args.alpha)))
    print(f"unit: {args.unit}; success: {', '.join(args.success)}; control: {control}")
    for variant, r in result.iterrows():
        line = f"{variant:>12}: {int(r.successes):>7}/{int(r.trials):<8} rate {r.rate:.4f}"
        if not pd.isna(r.get("p_value", float("nan"))):
            line += (f"  diff {r['diff']:+.4f} [{r.diff_low:+.4f}, {r.diff_high:+.4f}]  lift {r.lift:+.1%} "
                     f"[{r.lift_low:+.1%}, {r.lift_high:+.1%}] ({level}% CI)  z {r.z:+.2f}  p {r.p_value:.4g}")
        print(line)
    print(f"chi-square over all variants: {chi2['chi2']:.3f} (dof {chi2['dof']}), p {chi2['p_value']:.4g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
