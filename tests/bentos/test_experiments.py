"""A/B test and shadow model over real HTTP: users split between bundle v1 (control) and v2 (treatment) by
the stable hash of recsys.serving.experiments; a shadow (v2) scored on live traffic and logged, never
served; impressions and feedback logged with the variant, and the readout command compares the variants."""

from __future__ import annotations

import glob
import json
import time

import pytest
import requests

from tests.bentos.conftest import server_env

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    return tmp_path_factory.mktemp("experiment")


@pytest.fixture(scope="module")
def server(bundles, start_server, logs):
    env = server_env(logs, str(bundles["v1"]), RECSYS_EXPERIMENT="ranker-v2", RECSYS_TREATMENT_MODEL=str(bundles["v2"]),
                     RECSYS_TREATMENT_SHARE="0.5", RECSYS_SHADOW_MODEL=str(bundles["v2"]))
    return start_server(env)


def read_log(logs):
    records = []
    for path in glob.glob(str(logs / "logs" / "experiments-*.jsonl")):
        records += [json.loads(line) for line in open(path)]
    return records


def test_variants_follow_the_stable_assignment_and_are_logged(server, bundles, logs):
    from recsys.serving.experiments import Experiment
    from recsys.serving.readout import counts, read_log as readout_log, readout

    experiment = Experiment("ranker-v2", {"control": 0.5, "treatment": 0.5})
    users = list(bundles["known"].user_id.drop_duplicates()[:60]) + [f"cold-{i}" for i in range(20)]
    session = requests.Session()
    served = {}
    for user in users:
        body = session.post(server.url + "/recommend", json={"user_id": user, "k": 5}, timeout=10).json()
        assert body["experiment"] == "ranker-v2"
        assert body["variant"] == experiment.assign(user), user
        assert body["model_version"] == {"control": "v1", "treatment": "v2"}[body["variant"]]
        served[user] = body
    assert {b["variant"] for b in served.values()} == {"control", "treatment"}
    # The same user always lands in the same variant.
    again = session.post(server.url + "/recommend", json={"user_id": users[0], "k": 5}, timeout=10).json()
    assert again["variant"] == served[users[0]]["variant"]

    for user in users[::2]:  # clicks on the first item of every other user
        r = session.post(server.url + "/feedback", json={"user_id": user, "item_id": served[user]["items"][0]["item_id"],
                                                         "event_type": "click"}, timeout=10)
        assert r.status_code == 200 and r.json()["variant"] == served[user]["variant"]

    deadline = time.monotonic() + 20  # the shadow scores in a background thread
    while time.monotonic() < deadline and sum(r["type"] == "shadow" for r in read_log(logs)) < len(users):
        time.sleep(0.2)
    records = read_log(logs)
    impressions = [r for r in records if r["type"] == "impression"]
    feedback = [r for r in records if r["type"] == "feedback"]
    shadow = [r for r in records if r["type"] == "shadow"]
    assert len(impressions) == len(users) + 1 and len(feedback) == len(users[::2])
    assert all(r["variant"] == experiment.assign(r["user_id"]) for r in impressions + feedback)
    assert len(shadow) >= len(users) and all(r["model_version"] == "v2" for r in shadow)
    # Control users were served v1 while the v2 shadow scored the same request: logged, not served.
    control_user = next(u for u in users if served[u]["variant"] == "control")
    logged = next(r for r in shadow if r["user_id"] == control_user)
    assert logged["served"] == [i["item_id"] for i in served[control_user]["items"]]

    table = counts(readout_log([str(logs / "logs" / "experiments-*.jsonl")]), "ranker-v2")
    result, _ = readout(table, "control")
    assert set(result.index) == {"control", "treatment"}
    assert int(table.successes.sum()) == len(users[::2])  # every click followed an impression
