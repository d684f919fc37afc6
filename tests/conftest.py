import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MIDI = ROOT.parent / "shared" / "midi" / "piano-midi"
sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helpers (midi_bytes)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    """One local[2] SparkSession for the whole run: UI off, scratch space in a temp folder."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    scratch = tmp_path_factory.mktemp("spark")
    session = (SparkSession.builder.master("local[2]")
               .appName("lstm-composer tests")
               .config("spark.ui.enabled", "false")
               .config("spark.sql.shuffle.partitions", "4")
               .config("spark.local.dir", str(scratch))
               .config("spark.sql.warehouse.dir", str(scratch / "warehouse"))
               .getOrCreate())
    yield session
    session.stop()
