"""Turn a failed run into the few lines a person needs: which step failed and the error it raised.

ZenML wraps a step's failure (the orchestrator logs a framed traceback and raises "Pipeline run has failed
due to failure in step(s): ..."); the step's own exception is recorded on the failed step of the run
(`exception_info`: class and message), and, on the local orchestrator in fail-fast mode, is the very
exception run.py catches. Errors the person can fix (recsys.errors.UserError: invalid data, a model not
trained yet; a missing file; an invalid configuration) print as the last lines without a traceback and exit
2; anything else is a bug: the step's traceback, then the message, exit 1. `--debug` adds the traceback of
the exception as caught in every case.
"""

from __future__ import annotations

import importlib
import re
import sys
import traceback
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Optional

USER_ERROR = 2
BUG = 1
# Raised before any step runs, on a configuration ZenML or pydantic rejects, or YAML that does not parse.
CONFIG_ERRORS = ("pydantic_core._pydantic_core.ValidationError", "yaml.scanner.ScannerError",
                 "yaml.parser.ParserError", "zenml.exceptions.StepInterfaceError",
                 "zenml.exceptions.PipelineInterfaceError", "zenml.exceptions.ValidationError")


def _qualified(kind: type) -> str:
    return f"{kind.__module__}.{kind.__qualname__}"


def is_user_error(kind: Optional[type]) -> bool:
    from recsys.errors import UserError

    return kind is not None and (issubclass(kind, (UserError, FileNotFoundError)) or any(
        _qualified(k) in CONFIG_ERRORS for k in kind.__mro__))


def _load(source: Optional[str]) -> Optional[type]:
    """The exception class a step recorded (`module.Class`), when importable here."""
    if not source:
        return None
    module, _, name = source.rpartition(".")
    try:
        found = getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - a class from code this process cannot import: treat as unknown
        return None
    return found if isinstance(found, type) else None


def _chain(error: BaseException):
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__


def failed_step(pipeline_name: str, since: datetime):
    """(step name, ExceptionInfo) of the failed step of the newest run of `pipeline_name` created after
    `since` (UTC), or None (e.g. the configuration was rejected before a run was created)."""
    from zenml.client import Client

    try:
        runs = Client().list_pipeline_runs(pipeline_name=pipeline_name, sort_by="desc:created", size=1)
    except Exception:  # noqa: BLE001 - no such pipeline yet
        return None
    for run in runs.items:
        created = run.created if run.created.tzinfo else run.created.replace(tzinfo=timezone.utc)
        if created < since:
            return None
        for name, step in run.steps.items():
            if step.status.value == "failed" and step.exception_info is not None:
                return name, step.exception_info
    return None


def no_model_version(error: BaseException, model: str) -> Optional[str]:
    """ZenML's KeyError for a config's `model: {version: production}` before any version has that stage."""
    for cause in _chain(error):
        found = isinstance(cause, KeyError) and re.search(r"No (\w+) stage version found for model", str(cause))
        if found:
            return (f"the model {model!r} has no {found.group(1)!r} version yet (ZenML model stage); train and "
                    "register one first: python run.py --pipeline train")
    return None


def model_name(config) -> str:
    """The ZenML model a run configuration names ('' if none)."""
    import yaml

    return ((yaml.safe_load(Path(config).read_text()) or {}).get("model") or {}).get("name", "")


def report(error: BaseException, pipeline_name: str, since: datetime, model: str = "", debug: bool = False,
           out=None) -> int:
    """Print what failed (last lines: the error message) and return the exit code; `since`: when run.py
    started the run (UTC); `model`: the ZenML model the configuration names."""
    out = out or sys.stderr
    if debug:
        traceback.print_exception(error, file=out)
    missing = no_model_version(error, model)
    if missing:
        print(f"\n{pipeline_name} could not run:\n{missing}", file=out)
        return USER_ERROR
    step = failed_step(pipeline_name, since - timedelta(seconds=1))
    caught = next((e for e in _chain(error) if is_user_error(type(e))), None)
    if caught is not None:  # the step's own exception, raised through (local orchestrator, fail fast)
        kind, message, trace = type(caught), str(caught), None
    elif step is not None:  # only what the run recorded (e.g. a remote orchestrator)
        info = step[1]
        kind = _load(info.source)
        message = info.message or info.traceback.strip().splitlines()[-1]
        trace = info.traceback
    else:
        kind, message, trace = type(error), str(error), "".join(traceback.format_exception(error))
    where = f"{pipeline_name} failed at step {step[0]}" if step else f"{pipeline_name} could not run"
    if is_user_error(kind):
        print(f"\n{where}:\n{message}", file=out)
        return USER_ERROR
    if trace and not debug:
        print(trace.rstrip(), file=out)
    name = kind.__name__ if kind else (step[1].source or "error").rpartition(".")[2] if step else "error"
    print(f"\n{where}: {name}: {message}", file=out)
    return BUG
