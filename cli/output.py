"""What a run prints: the project's lines and the step boundaries; third-party chatter silenced at its source.

`quiet_environment()` runs before TensorFlow, MLflow or ZenML are imported (their start-up settings are read
from the environment once), `quiet_libraries()` after ZenML is imported (it configures logging on import).
Only chatter goes: levels are raised to WARNING (ERROR for libraries whose warnings are known noise here, e.g.
Feast's "Could not validate FileSource path" for the glob paths of the feature tables), so real errors still
show; `run.py --verbose` skips both and everything comes back. A setting the user exported wins over ours.

Hand-written: the list of noisy loggers and warnings, because each library has its own switch (a logger
level, an environment variable, a warnings filter) and none of them offers a "quiet" mode for the others.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import warnings
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]

# Read by the libraries at import: TensorFlow's C++ logging (cuda probing, oneDNN, absl banners), gRPC,
# MLflow's own log level (its "Creating initial MLflow database tables" and run links).
ENVIRONMENT = {
    "TF_CPP_MIN_LOG_LEVEL": "2",  # errors only
    "GRPC_VERBOSITY": "ERROR",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # "Downloading artifacts" bars when a model is logged
    "ZENML_ENABLE_RICH_TRACEBACK": "false",  # run.py prints a failing step's error itself (--debug: traceback)
    # Spark's JVM logging: errors only (its start-up notices, hostname and task-size warnings otherwise).
    "SPARK_CONF_DIR": str(PROJECT / "cli" / "spark"),
}

# logger -> level. INFO chatter that repeats or advertises; step boundaries ("Step x has started/finished")
# and "Pipeline run has finished" come from other ZenML loggers and stay.
LEVELS = {
    "zenml.pipelines.pipeline_definition": logging.WARNING,  # "Initiating a new run", user, stack, dashboard ad
    "zenml.orchestrators.step_run_utils": logging.WARNING,  # "Models can be viewed ... ZenML Pro"
    "zenml.zen_stores": logging.WARNING,  # "Model version 2 has been set to archived" (the stage moved on)
    "zenml.materializers": logging.WARNING,
    "zenml.integrations": logging.WARNING,
    "faiss.loader": logging.WARNING,  # "Loading faiss with AVX2 support" and its fallback
    "feast": logging.WARNING,  # "Registry cache expired, so refreshing" (20 per point-in-time join)
    "feast.infra.offline_stores.file_source": logging.ERROR,  # "Could not validate FileSource path" (a glob)
    "mlflow": logging.WARNING,
    "alembic": logging.WARNING,  # MLflow's database migrations on first use
    "absl": logging.WARNING,
    "tensorflow": logging.ERROR,  # deprecation notices of TF internals
    "py4j": logging.WARNING,  # Spark's gateway chatter (and its logging errors at exit)
    "evidently": logging.WARNING,
    "numexpr": logging.WARNING,
    "urllib3": logging.WARNING,
    "httpx": logging.WARNING,
    "kafka": logging.WARNING,
}

# Deprecation notices third-party code raises about other third-party code (e.g. ibis calling DuckDB's
# fetch_arrow_table(), ~30 times a run): nothing a user of this project can act on. Our own modules keep
# theirs (the pattern matches every module outside the project's packages).
THIRD_PARTY = r"(?!(recsys|steps|pipelines|stacks|bentos|cli|run)(\.|$))"
IGNORED_WARNINGS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)


def quiet_environment() -> None:
    """Set the start-up switches of the noisy libraries (before they are imported)."""
    for name, value in ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def quiet_libraries() -> None:
    """Raise the noisy loggers' levels and drop third-party deprecation warnings. Warnings go through
    logging (`py.warnings`), filtered there too: Feast resets the warnings filters when it is imported
    (`simplefilter("once", DeprecationWarning)`), which would bring them back mid-run."""
    for name, level in LEVELS.items():
        logging.getLogger(name).setLevel(level)
    for category in IGNORED_WARNINGS:
        warnings.filterwarnings("ignore", category=category, module=THIRD_PARTY)
    logging.captureWarnings(True)
    target = logging.getLogger("py.warnings")
    if not any(isinstance(f, DropThirdPartyDeprecations) for f in target.filters):
        target.addFilter(DropThirdPartyDeprecations())


class DropThirdPartyDeprecations(logging.Filter):
    """A captured warning reads "<file>:<line>: <Category>: <message>": drop the ignored categories unless
    the file is the project's own code."""

    CATEGORY = re.compile(r":\d+: (%s): " % "|".join(c.__name__ for c in IGNORED_WARNINGS))

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if not self.CATEGORY.search(text):
            return True
        path = text.split(":", 1)[0]
        return path.startswith(str(PROJECT)) and "site-packages" not in path


@contextlib.contextmanager
def only_errors(logger: str = "zenml", enabled: bool = True):
    """ZenML's one-time set-up chatter (global config, database tables, default stack, active stack: some of
    it as warnings) while run.py prepares the stack."""
    if not enabled:
        yield
        return
    target = logging.getLogger(logger)
    saved = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(saved)


class HideTracebacks(logging.Filter):
    """On the console only: a failing step's traceback, logged by ZenML's orchestrator and step launcher, is
    replaced by run.py's plain message at the end (the step's logs in the dashboard keep it; --debug shows
    it here)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("zenml.") and record.levelno >= logging.ERROR:
            return False  # "Failed to run step", "Step x failed.": the end of the output says it plainly
        return True


def hide_step_tracebacks() -> None:
    """Attach HideTracebacks to ZenML's console handler (not to its log-storage handler)."""
    from zenml.logger import ZenMLConsoleHandler

    for handler in logging.getLogger().handlers:
        if isinstance(handler, ZenMLConsoleHandler) and not any(isinstance(f, HideTracebacks) for f in handler.filters):
            handler.addFilter(HideTracebacks())
