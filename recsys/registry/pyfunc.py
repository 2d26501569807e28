"""The registered model as an MLflow model: a `pyfunc` flavor over the bundle, with a signature.

What MLflow's model page shows (flavor, signature, requirements) and what `mlflow.pyfunc.load_model(
"models:/<name>@production")` returns: `predict` takes rows of user_id (and optionally k, the list length,
default 10) and returns the lists, one row per recommended item: user_id, rank, item_id, score, source,
stage; exactly `Recommender.recommend_batch`. The model directory holds the bundle (artifact "bundle") and
this package's code, so it loads wherever the requirements are installed. The service and batch inference
keep reading the bundle itself (recsys.registry.mlflow_registry.download_bundle: the run's `bundle/`).
"""

from __future__ import annotations

from pathlib import Path

import mlflow.pyfunc
import pandas as pd

MODEL_NAME = "model"  # the logged model's name within the run
OUTPUT_COLUMNS = (("user_id", "string"), ("rank", "long"), ("item_id", "string"), ("score", "double"),
                  ("source", "string"), ("stage", "string"))


class RecommenderModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper: the bundle's Recommender, loaded once per process."""

    def load_context(self, context) -> None:
        from recsys.registry.bundle import load_bundle

        self.recommender, self.meta = load_bundle(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        users = frame["user_id"].astype(str).tolist()
        k = int(frame["k"].dropna().iloc[0]) if "k" in frame and frame["k"].notna().any() else 10
        recs = self.recommender.recommend_batch(users, k)
        return recs[[c for c, _ in OUTPUT_COLUMNS if c in recs.columns]]


def signature():
    from mlflow.models import ModelSignature
    from mlflow.types.schema import ColSpec, Schema

    inputs = Schema([ColSpec("string", "user_id"), ColSpec("long", "k", required=False)])
    return ModelSignature(inputs=inputs, outputs=Schema([ColSpec(t, c) for c, t in OUTPUT_COLUMNS]))


def log_model(tracking_uri: str, run_id: str, bundle_dir: str | Path, example_users: list[str],
              requirements: str | Path | None = None) -> str:
    """Log the pyfunc model (bundle + recsys code, the model file recsys/registry/pyfunc_model.py) to run
    `run_id`; MLflow checks the signature by loading it and answering `example_users` (k=5), and keeps that
    as the input example. Returns its model URI, the source a registered version points at.
    `requirements`: a pip requirements file (default: none inferred, since inference would load the model
    in a subprocess)."""
    import mlflow

    code = Path(__file__).resolve().parents[1]  # the recsys package
    example = pd.DataFrame({"user_id": list(example_users), "k": [5] * len(example_users)})
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(run_id=run_id):
            info = mlflow.pyfunc.log_model(name=MODEL_NAME, python_model=str(code / "registry" / "pyfunc_model.py"),
                                           artifacts={"bundle": str(bundle_dir)}, code_paths=[str(code)],
                                           signature=signature(), input_example=example,
                                           pip_requirements=str(requirements) if requirements else [])
    finally:
        mlflow.set_tracking_uri(previous)
    return info.model_uri
