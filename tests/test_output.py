"""What run.py's quiet environment (cli/output.py) does to Spark, whose JVM logs outside Python's logging."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_a_spark_job_under_run_pys_environment_prints_nothing():
    """Spark's start-up notices and WARN lines (log4j profile, hostname, native Hadoop, "Setting default log
    level") are gone: only the JVM's own notice about the incubator module it is started with remains."""
    code = ("from cli.output import quiet_environment; quiet_environment()\n"
            "from recsys.features.spark_job import spark_session\n"
            "spark = spark_session('local[1]', 'quiet-test'); spark.range(5).count(); spark.stop()\n")
    env = {name: value for name, value in os.environ.items() if name != "SPARK_CONF_DIR"}
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    printed = [line for line in (result.stdout + result.stderr).splitlines()
               if line.strip() and "Using incubator modules" not in line]
    assert printed == []
