"""Experiments: stable assignment, the log, shadow scoring and the readout statistics (hand-derived)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys.serving.experiments import Experiment, ExperimentLog, Shadow, bucket, compare_lists
from recsys.serving.readout import counts, main, read_log, readout, two_proportion_test


def test_bucket_is_the_documented_sha256_cut():
    # sha256(b"exp/u1") starts with 30ec5e6b787c9261; 0x30ec5e6b787c9261 / 2**64 = 0.19110670...
    # Pinned: a change of the hash would silently move users between the variants of running experiments.
    assert bucket("u1", "exp") == pytest.approx(0x30EC5E6B787C9261 / 2**64, abs=1e-15)
    assert bucket("u1", "exp") == pytest.approx(0.1911067020778, abs=1e-12)
    assert Experiment("exp", {"a": 1, "b": 1}).assign("u1") == "a"  # 0.19 < 0.5
    assert Experiment("exp", {"a": 1, "b": 4}).assign("u1") == "a"  # 0.19 < 0.2
    assert Experiment("exp", {"a": 1, "b": 9}).assign("u1") == "b"  # 0.19 >= 0.1


def test_assignment_is_stable_across_processes_and_splits_traffic_by_weight():
    users = [f"user-{i}" for i in range(20000)]
    exp = Experiment("ranker-v2", {"control": 1, "candidate": 3})
    got = [exp.assign(u) for u in users]
    assert abs(got.count("control") / len(users) - 0.25) < 0.015  # binomial sd 0.003
    code = ("from recsys.serving.experiments import Experiment; e = Experiment('ranker-v2', "
            "{'control': 1, 'candidate': 3}); print(','.join(e.assign(f'user-{i}') for i in range(200)))")
    for seed in ("1", "2"):  # Python's hash() would differ between these processes
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=str(Path(__file__).parents[3]))
        assert out.stdout.strip().split(",") == got[:200]
    other = Experiment("explain-copy", {"control": 1, "candidate": 3})
    agree = np.mean([other.assign(u) == g for u, g in zip(users, got)])
    assert abs(agree - (0.25**2 + 0.75**2)) < 0.015  # independent experiments: 0.625 agreement


def test_experiment_config_validation():
    assert Experiment.from_config({"name": "x", "variants": {"a": 50, "b": 50}}).variants == {"a": 50.0, "b": 50.0}
    with pytest.raises(ValueError):
        Experiment("x", {"a": 0, "b": 0})
    with pytest.raises(ValueError):
        Experiment("x", {"a": -1, "b": 2})


def test_two_proportion_test_by_hand():
    r = two_proportion_test(100, 1000, 130, 1000)
    # pooled p = 0.115; SE = sqrt(0.115 * 0.885 * 2 / 1000) = 0.0142671; z = 0.03 / SE = 2.10274
    assert r["z"] == pytest.approx(2.10274, abs=1e-4)
    assert r["p_value"] == pytest.approx(0.035488, abs=1e-5)
    # unpooled SE = sqrt(0.09/1000 + 0.1131/1000) = 0.0142513; 1.959964 * SE = 0.0279319
    assert (r["diff_low"], r["diff_high"]) == pytest.approx((0.0020681, 0.0579319), abs=1e-6)
    # lift 0.3; log RR = ln 1.3 = 0.262364, SE = sqrt(0.9/100 + 0.87/130) = 0.125269
    assert r["lift"] == pytest.approx(0.3)
    # 1.959964 * 0.125269 = 0.245524 -> exp(0.016840) - 1 = 0.01698, exp(0.507888) - 1 = 0.66178
    assert (r["lift_low"], r["lift_high"]) == pytest.approx((0.01698, 0.66178), abs=5e-5)


def _write_log(path):
    log = ExperimentLog(path)
    rows = [
        {"type": "impression", "experiment": "e", "variant": "A", "user_id": "x", "items": ["i1", "i2"], "ts": 10},
        {"type": "impression", "experiment": "e", "variant": "A", "user_id": "x", "items": ["i1"], "ts": 11},
        {"type": "impression", "experiment": "e", "variant": "A", "user_id": "y", "items": ["i1"], "ts": 12},
        {"type": "impression", "experiment": "e", "variant": "B", "user_id": "z", "items": ["i3", "i4"], "ts": 13},
        {"type": "impression", "experiment": "e", "variant": "B", "user_id": "w", "items": ["i3"], "ts": 20},
        {"type": "feedback", "user_id": "x", "item_id": "i1", "event_type": "click", "ts": 15},
        {"type": "feedback", "user_id": "y", "item_id": "i1", "event_type": "view", "ts": 15},  # not a success
        {"type": "feedback", "user_id": "z", "item_id": "i3", "event_type": "click", "ts": 14},
        {"type": "feedback", "user_id": "z", "item_id": "i4", "event_type": "booking", "ts": 30},
        {"type": "feedback", "user_id": "w", "item_id": "i3", "event_type": "click", "ts": 5},  # before the impression
        {"type": "impression", "experiment": "other", "variant": "A", "user_id": "q", "items": ["i9"], "ts": 1},
    ]
    for row in rows:
        log.write(row)


def test_counts_and_readout_from_a_hand_made_log(tmp_path):
    path = tmp_path / "exp.jsonl"
    _write_log(path)
    frame = read_log([str(path)])
    imp = counts(frame, "e")
    # A: (x,i1) (x,i2) (y,i1) -> 3 trials, 1 success; B: (z,i3) (z,i4) (w,i3) -> 3 trials, 2 successes
    assert imp.to_dict("index") == {"A": {"trials": 3, "successes": 1}, "B": {"trials": 3, "successes": 2}}
    users = counts(frame, "e", unit="user")
    assert users.to_dict("index") == {"A": {"trials": 2, "successes": 1}, "B": {"trials": 2, "successes": 1}}
    table, chi2 = readout(imp, "A")
    # 1/3 vs 2/3: pooled 0.5, SE = sqrt(0.25 * 2/3) = 0.408248, z = (1/3) / 0.408248 = 0.816497; chi2 = z^2
    assert table.loc["B", "z"] == pytest.approx(0.816497, abs=1e-6)
    assert chi2["chi2"] == pytest.approx(0.816497**2, abs=1e-6) and chi2["dof"] == 1
    assert table.loc["B", "lift"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="pick one"):
        counts(frame)


def test_readout_command(tmp_path, capsys):
    path = tmp_path / "exp.jsonl"
    _write_log(path)
    assert main(["--log", str(path), "--experiment", "e", "--control", "A", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["variants"]["B"]["successes"] == 2 and out["variants"]["B"]["p_value"] == pytest.approx(
        2 * (1 - 0.5 * (1 + math.erf(0.816497 / math.sqrt(2)))), abs=1e-5)
    assert main(["--log", str(path), "--experiment", "e", "--control", "B"]) == 0
    assert "lift" in capsys.readouterr().out
    assert main(["--log", str(path), "--experiment", "nope"]) == 2
    capsys.readouterr()
    assert main(["--log", str(path), "--experiment", "e"]) == 2  # no variant named control: say so, guess nothing
    assert "--control" in capsys.readouterr().err


def test_readout_takes_the_variant_named_control_whatever_the_log_order(tmp_path, capsys):
    """The bug of issue 11: a log whose first impression came from the treatment group printed
    `control: treatment` and compared control against treatment, the sign of every lift flipped."""
    log = ExperimentLog(tmp_path / "exp.jsonl")
    log.impressions("canary", "treatment", "t1", ["i1", "i2"])
    log.impressions("canary", "control", "c1", ["i1", "i2"])
    log.impressions("canary", "control", "c2", ["i3"])
    log.feedback("t1", "i1", "click")
    log.feedback("t1", "i2", "click")
    log.feedback("c1", "i1", "click")
    table = counts(read_log([str(tmp_path / "exp.jsonl")]))
    assert list(table.index) == ["treatment", "control"]  # first seen first
    result, _ = readout(table)
    # control 1/3, treatment 2/2: the treatment is the one with a lift, +200%
    assert result.loc["treatment", "lift"] == pytest.approx(2.0) and pd.isna(result.loc["control"].get("lift"))
    assert main(["--log", str(tmp_path / "exp.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "control: control" in out and "+200.0%" in out


def test_shadow_scores_logs_and_never_serves_or_fails(make, tmp_path):
    primary = make()
    shadow_model = make().variant(rerank={"mmr_weight": 0.5})
    log = ExperimentLog(tmp_path / "shadow.jsonl")
    shadow = Shadow(shadow_model, log, name="mmr05", background=True)
    served = primary.recommend("u4", 5)
    shadow.submit("u4", 5, [], None, served)
    shadow.close()
    records = [json.loads(line) for line in (tmp_path / "shadow.jsonl").read_text().splitlines()]
    assert len(records) == 1 and records[0]["type"] == "shadow" and records[0]["served"] == [r["item_id"] for r in served]
    assert records[0]["overlap"] == compare_lists(records[0]["served"], records[0]["items"])["overlap"]
    assert shadow_model.impressions.fatigued("u4", 1e12).size == 0 and not shadow_model.impressions.to_frame().user_id.eq("u4").any()

    class Broken:
        version = "x"

        def variant(self, **_):
            return self

        def recommend(self, *a, **k):
            raise RuntimeError("boom")

    failing = Shadow(Broken(), log, background=False)
    failing.submit("u4", 5, [], None, served)  # must not raise
    assert failing.failed == 1
    assert compare_lists(["a", "b"], ["b", "c"]) == {"overlap": 0.5, "same_top": False}
    assert isinstance(pd.DataFrame(records), pd.DataFrame)
