"""Run one of the project's ZenML pipelines on a stack. Values live in configs/, not in flags.

    python run.py --pipeline features                               # configs/features.yaml: Spark -> Feast
    python run.py --pipeline train                                  # configs/train.yaml, local stack
    python run.py --pipeline train --config configs/train_movielens.yaml --no-cache
    python run.py --pipeline batch                                  # configs/batch.yaml
    python run.py --pipeline drift                                  # the next week against production
    python run.py --pipeline retrain --every 3600                   # the loop, once an hour
    python run.py --pipeline deploy                                 # bento, smoke test, manifests (docs/deploy.md)
    python run.py --pipeline canary                                 # a canary's readout: promote or roll back
    python run.py --pipeline train --stack kubeflow                 # see stacks/README.md

Relative paths in configs (data/...) are relative to this directory, wherever the command starts.
"""

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tensorflow-recommenders needs Keras 2 (tf-keras)

ROOT = Path(__file__).resolve().parent
PIPELINES = {  # name -> (module, pipeline function, default config); None: not built yet
    "features": ("pipelines.features", "features_pipeline", "configs/features.yaml"),
    "train": ("pipelines.training", "train_pipeline", "configs/train.yaml"),
    "drift": ("pipelines.drift", "drift_pipeline", "configs/drift.yaml"),
    "retrain": ("pipelines.retrain", "retrain_pipeline", "configs/retrain.yaml"),
    "rollback": ("pipelines.rollback", "rollback_pipeline", "configs/rollback.yaml"),
    "deploy": ("pipelines.deploy", "deploy_pipeline", "configs/deploy.yaml"),
    "canary": ("pipelines.canary", "canary_pipeline", "configs/canary.yaml"),
    "batch": ("pipelines.batch", "batch_inference_pipeline", "configs/batch.yaml"),
    "stream": None,
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", required=True, choices=PIPELINES)
    parser.add_argument("--config", type=Path, help="ZenML run configuration (default: one per pipeline)")
    parser.add_argument("--stack", default="local", choices=("local", "kubeflow"))
    parser.add_argument("--no-cache", action="store_true", help="re-run every step")
    parser.add_argument("--every", type=float, metavar="SECONDS", help="run again every SECONDS (a local schedule)")
    return parser.parse_args(argv)


def where_to_look(run) -> None:
    """Print what the run produced and where to browse it."""
    from zenml.client import Client

    run = Client().get_pipeline_run(run.id)
    print(f"\nrun {run.name}: {run.status.value}")
    if "register_model" in run.steps:
        result = run.steps["register_model"].regular_outputs["registration"].load()
        print(f"registered {result['mlflow_model']} version {result['mlflow_version']} (alias {result['alias']}), "
              f"bundle {result['bundle']}" if result["registered"] else
              "quality gate failed: nothing registered (see the quality_gate step log)")
    if "materialize_features" in run.steps:
        store = run.steps["materialize_features"].regular_outputs["feature_materialization"].load()
        print(f"features: {store['features_dir']} -> Feast online store ({store['fs_yaml']}) up to "
              f"{store['materialized']['end']}; inspect it: cd {store['repo_path']} && feast feature-views list")
    for step, artifact in (("check_drift", "drift_verdict"), ("decide_retrain", "retrain_decision"),
                           ("promote_challenger", "promotion"), ("rollback_model", "rollback"),
                           ("record_deployment", "deployment"), ("render_manifests", "manifests"),
                           ("containerize_bento", "container_image"), ("start_canary", "canary"),
                           ("read_canary", "canary_decision"), ("conclude_canary", "canary_result")):
        if step in run.steps:
            value = run.steps[step].regular_outputs[artifact].load()
            print(value.summary() if hasattr(value, "summary") else value.get("summary", value)
                  if isinstance(value, dict) else getattr(value, "reason", value))
    if "batch_predict" in run.steps:
        output = run.steps["batch_predict"].config.parameters["output_path"]
        print(f"recommendations: {(ROOT / output).resolve()}")
    tracker = Client().active_stack.experiment_tracker
    if tracker is not None and hasattr(tracker, "get_tracking_uri"):
        print(f"MLflow UI:         mlflow ui --backend-store-uri {tracker.get_tracking_uri()}")
    print("ZenML dashboard:   zenml login --local")


def main(argv=None) -> int:
    args = parse_args(argv)
    if PIPELINES[args.pipeline] is None:
        print(f"pipeline {args.pipeline!r} is not built yet", file=sys.stderr)
        return 2
    module, name, default_config = PIPELINES[args.pipeline]
    config = (args.config or ROOT / default_config).resolve()
    if not config.is_file():
        print(f"config file {config} does not exist", file=sys.stderr)
        return 2
    os.chdir(ROOT)
    from stacks import activate

    try:
        options = activate(args.stack, ROOT)  # e.g. kubeflow: image build, pod environment, step resources
    except RuntimeError as error:  # e.g. kubeflow settings missing
        print(f"cannot use the {args.stack} stack: {error}", file=sys.stderr)
        return 2
    pipeline = getattr(importlib.import_module(module), name)
    while True:
        run = pipeline.with_options(config_path=str(config), enable_cache=False if args.no_cache else None,
                                    **options)()
        where_to_look(run)
        if not args.every:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
