"""Cache policy of the project's pipelines: a cached step is reused only if the recsys code is unchanged.

ZenML's cache key covers a step's own source, its parameters and its inputs, not the library code the step
calls. The steps here are thin and all the behaviour is in recsys/, so without this a change to, say, the
ranker would silently reuse the artifacts of the old code.
"""

import hashlib
from pathlib import Path

from zenml.config.cache_policy import CachePolicy


def recsys_code_version() -> str:
    """sha256 over the paths and contents of every .py file in the recsys package."""
    import recsys

    root = Path(recsys.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# By import path, so that defining the pipelines resolves nothing.
CACHE_POLICY = CachePolicy(cache_func="steps.cache.recsys_code_version")
