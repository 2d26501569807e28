"""Take the screenshots in docs/img/ from this checkout's runs, as a user sees them.

    make train && .venv/bin/python run.py --pipeline drift      # (three drift runs reach the season's turn)
    .venv/bin/zenml login --local                                # the ZenML dashboard on 127.0.0.1:8237
    .venv/bin/python docs/img/dashboards.py [--out docs/img] [--mlflow-port 5055]

The ZenML part opens the latest train and drift runs, finds an artifact with the DAG's search, opens it and
its Visualization tab; the MLflow part starts `mlflow ui` on the project's tracking database and opens the
registered model's run (Model training view) and its figures. The local server's one-time survey is
answered through the API (the user's e-mail opt-in), as clicking through it would.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture import Browser  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
ZENML = "http://127.0.0.1:8237"


def latest_run(client, pipeline: str):
    runs = client.list_pipeline_runs(pipeline_name=pipeline, sort_by="desc:created", size=20)
    return next(run for run in runs if run.status.value == "completed")


def skip_survey(client) -> None:
    from zenml.models import UserUpdate

    if client.active_user.email_opted_in is None:
        client.zen_store.put("/current-user", body=UserUpdate(email_opted_in=False))


def open_artifact(browser: Browser, run_id, artifact: str, tab: str = "Visualization") -> None:
    browser.goto(f"{ZENML}/projects/default/runs/{run_id}", 8)
    browser.evaluate("document.querySelector('button[aria-label=\"Open DAG search\"]').click()")
    time.sleep(1)
    browser.call("Input.insertText", text=artifact)
    time.sleep(2)
    browser.evaluate("[...document.querySelectorAll('button')].find(e => /Next DAG search/.test("
                     "e.getAttribute('aria-label') || '')).click()")
    time.sleep(3)
    if not browser.click(artifact, 5):
        raise RuntimeError(f"no artifact {artifact!r} in run {run_id}")
    if tab:  # the sheet's tab: the last element with that text (the run page has its own Visualization tab)
        browser.evaluate(f"""(() => {{ const all = [...document.querySelectorAll('button, [role=tab]')]
            .filter(e => e.innerText && e.innerText.trim() === {tab!r}); all[all.length - 1].click(); }})()""")
        time.sleep(2)
        browser.click("Load Preview", 8)  # the dashboard asks before it renders HTML


def zenml_shots(out: Path) -> None:
    from zenml.client import Client

    client = Client()
    skip_survey(client)
    train, drift = latest_run(client, "train_pipeline"), latest_run(client, "drift_pipeline")
    browser = Browser(1800, 1400)
    try:
        for run, step, artifact, name in ((train, "evaluate", "evaluation_report", "zenml_evaluation_report"),
                                          (train, "quality_gate", "gate_report", "zenml_gate_report"),
                                          (train, "split_data", "data_summary", "zenml_data_summary"),
                                          (drift, "check_drift", "drift_report", "zenml_drift_report")):
            open_artifact(browser, run.id, artifact)
            browser.screenshot(out / f"{name}.png")
            # the whole page the dashboard shows in its frame, rendered from the artifact itself
            page = out / f"{name}.html"
            page.write_text(str(run.steps[step].regular_outputs[artifact].load()))
            browser.goto(page.resolve().as_uri(), 6)
            browser.screenshot(out / f"{name}_full.png", full_page=True)
            page.unlink()
            print(f"{out / name}.png, {name}_full.png: {artifact} of {run.name}")
        browser.goto(f"{ZENML}/projects/default/runs/{train.id}", 8)
        browser.click("Metadata", 4)
        browser.screenshot(out / "zenml_run_metadata.png")
        print(f"{out / 'zenml_run_metadata.png'}: the Metadata tab of {train.name}")
    finally:
        browser.close()


def mlflow_shots(out: Path, port: int) -> None:
    import mlflow

    uri = f"sqlite:///{ROOT / 'data' / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    version = client.get_model_version_by_alias("travel-recommender", "production")
    run = client.get_run(version.run_id)
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1",
                               "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("mlflow ui did not start")
            time.sleep(1)
        browser = Browser(1600, 1300)
        try:
            base = f"http://127.0.0.1:{port}/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}"
            browser.goto(base, 10)
            browser.click("Model training", 4)  # MLflow 3 opens in GenAI mode
            browser.goto(base, 10)
            browser.evaluate("[...document.querySelectorAll('button')].filter(b => /close/i.test("
                             "b.getAttribute('aria-label') || '')).forEach(b => b.click())")  # the assistant panel
            time.sleep(2)
            browser.screenshot(out / "mlflow_run.png")
            print(f"{out / 'mlflow_run.png'}: run {run.info.run_id} of version {version.version}")
            browser.goto(f"{base}/model-metrics", 12)
            browser.evaluate("document.querySelector('input[placeholder^=Search]').focus()")
            browser.call("Input.insertText", text="two_tower/")  # the per-epoch curves
            time.sleep(4)
            browser.screenshot(out / "mlflow_run_metrics.png")
            browser.goto(f"{base}/artifacts", 8)
            browser.click("evaluation_report.html", 10)  # the evaluation figures, as MLflow previews them
            browser.screenshot(out / "mlflow_run_figures.png")
            print(f"{out / 'mlflow_run_metrics.png'}, {out / 'mlflow_run_figures.png'}")
        finally:
            browser.close()
    finally:
        server.terminate()
        server.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img")
    parser.add_argument("--mlflow-port", type=int, default=5055)
    parser.add_argument("--only", choices=("zenml", "mlflow"))
    args = parser.parse_args()
    if args.only != "mlflow":
        zenml_shots(args.out)
    if args.only != "zenml":
        mlflow_shots(args.out, args.mlflow_port)


if __name__ == "__main__":
    main()
