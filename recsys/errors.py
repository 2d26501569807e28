"""Errors a person can act on: something wrong in what they gave (data, configuration, files, state such as
a model not trained yet), not a bug in the code.

Front ends (run.py, the CLIs) print such an error's message as the last lines of the output, without a
traceback, and exit 2; anything else is a bug and keeps its traceback. Subclasses also derive from the
built-in type callers already catch (ValueError, LookupError), so raising one changes no `except` clause.
"""

from __future__ import annotations


class UserError(Exception):
    """A problem in the input or state the person controls; the message says what and how to fix it."""


class ModelNotFound(UserError, LookupError):
    """No registered model version where one was asked for (e.g. a drift check before any training run)."""


class ConfigError(UserError, ValueError):
    """A configuration value the code cannot use (an unknown key, model or metric name)."""
