"""Run one of the project's ZenML pipelines on a stack. Values live in configs/, not in flags.

    python run.py --pipeline features                               # configs/features.yaml: Spark -> Feast
    python run.py --pipeline train                                  # configs/train.yaml, local stack
    python run.py --pipeline batch                                  # configs/batch.yaml
    python run.py --pipeline drift                                  # the next week against production
    python run.py --pipeline retrain --every 3600                   # the loop, once an hour
    python run.py --pipeline deploy                                 # bento, smoke test, manifests (docs/deploy.md)
    python run.py --pipeline canary                                 # a canary's readout: promote or roll back
    python run.py --pipeline stream                                 # the Kafka consumer (runs until stopped)
    python run.py --pipeline train --stack kubeflow                 # see stacks/README.md

Paths in configs are relative to this directory. --verbose: every library's logs too; --debug: tracebacks.
"""

import argparse
import importlib
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tensorflow-recommenders needs Keras 2 (tf-keras)

ROOT = Path(__file__).resolve().parent
PIPELINES = {  # name -> (module, pipeline function, default config)
    "features": ("pipelines.features", "features_pipeline", "configs/features.yaml"),
    "train": ("pipelines.training", "train_pipeline", "configs/train.yaml"),
    "drift": ("pipelines.drift", "drift_pipeline", "configs/drift.yaml"),
    "retrain": ("pipelines.retrain", "retrain_pipeline", "configs/retrain.yaml"),
    "rollback": ("pipelines.rollback", "rollback_pipeline", "configs/rollback.yaml"),
    "deploy": ("pipelines.deploy", "deploy_pipeline", "configs/deploy.yaml"),
    "canary": ("pipelines.canary", "canary_pipeline", "configs/canary.yaml"),
    "batch": ("pipelines.batch", "batch_inference_pipeline", "configs/batch.yaml"),
}
PROCESSES = {"stream": ("recsys.streaming.consumer", "configs/stream.yaml")}  # long-running, not ZenML runs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pipeline", required=True, choices=[*PIPELINES, *PROCESSES])
    parser.add_argument("--config", type=Path, help="ZenML run configuration (default: one per pipeline)")
    parser.add_argument("--stack", default="local", choices=("local", "kubeflow"))
    parser.add_argument("--no-cache", action="store_true", help="re-run every step")
    parser.add_argument("--every", type=float, metavar="SECONDS", help="run again every SECONDS (a local schedule)")
    parser.add_argument("--verbose", action="store_true", help="every library's logs and warnings too")
    parser.add_argument("--debug", action="store_true", help="tracebacks of failures, also for input errors")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from cli import output

    if not args.verbose:
        output.quiet_environment()  # before TensorFlow, MLflow or ZenML are imported
    entry = PIPELINES.get(args.pipeline) or PROCESSES[args.pipeline]
    config = (args.config or ROOT / entry[-1]).resolve()
    if not config.is_file():
        print(f"config file {config} does not exist", file=sys.stderr)
        return 2
    os.chdir(ROOT)
    if args.pipeline in PROCESSES:
        return importlib.import_module(entry[0]).main(["--config", str(config)])
    from stacks import activate

    if not args.verbose:
        output.quiet_libraries()
    if not args.debug:
        output.hide_step_tracebacks()
    try:
        with output.only_errors(enabled=not args.verbose):  # ZenML's first-use set-up chatter
            options = activate(args.stack, ROOT)  # e.g. kubeflow: image build, pod environment, step resources
    except RuntimeError as error:  # e.g. kubeflow settings missing
        print(f"cannot use the {args.stack} stack: {error}", file=sys.stderr)
        return 2
    return run(getattr(importlib.import_module(entry[0]), entry[1]), config, args, options)


def run(pipeline, config: Path, args, options: dict) -> int:
    from zenml.enums import ExecutionMode

    from cli import errors, summary

    while True:
        started = datetime.now(timezone.utc)
        try:  # fail fast: the first failing step stops the run, its error is the last thing printed
            result = pipeline.with_options(config_path=str(config), enable_cache=False if args.no_cache else None,
                                           execution_mode=ExecutionMode.FAIL_FAST, **options)()
        except Exception as error:  # noqa: BLE001 - reported plainly; exit 2 for input errors, 1 for bugs
            return errors.report(error, pipeline.name, started, errors.model_name(config), args.debug)
        print("\n".join(summary.where_to_look(result, ROOT)))
        if not args.every:
            return 0
        time.sleep(args.every)


if __name__ == "__main__":
    sys.exit(main())
