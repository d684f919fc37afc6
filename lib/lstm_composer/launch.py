"""Starting the project's jobs as subprocesses (`spark-submit`, Horovod ranks) from Python:
the tests, the benchmarks and anyone scripting runs need the same environment for them."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def job_environment(spark_conf_dir: str | Path, **extra: str) -> dict[str, str]:
    """This process's environment, plus what a job started from this Python needs: the folder of
    this interpreter first on PATH (its venv's `spark-submit`), this interpreter as Spark's
    Python (`PYSPARK_PYTHON`), `spark_conf_dir` as `SPARK_CONF_DIR`, and TensorFlow's C++ log at
    warnings and above. `extra` variables come last and win."""
    bin_dir = Path(sys.executable).parent
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            "PYSPARK_PYTHON": sys.executable, "SPARK_CONF_DIR": str(spark_conf_dir),
            "TF_CPP_MIN_LOG_LEVEL": "2", **extra}
