"""Precision chosen for the machine a rank runs on."""
import os
import subprocess
import sys

import pytest

from lstm_composer.hardware import Precision, choose_precision, cpu_flags, training_precision

BF16 = {"avx2", "avx512f", "avx512_bf16"}


@pytest.mark.parametrize("flags, environment, gpus, expected", [
    (BF16, {}, [], Precision("mixed_bfloat16", "CPU with AVX512-BF16")),
    ({"avx2", "amx_bf16", "amx_tile"}, {}, [], Precision("mixed_bfloat16", "CPU with AMX")),
    ({"avx2", "avx512f"}, {}, [], Precision("float32", "CPU without AVX512-BF16 or AMX")),
    (BF16, {"ONEDNN_MAX_CPU_ISA": "AVX2"}, [],
     Precision("float32", "oneDNN limited to AVX2 by ONEDNN_MAX_CPU_ISA: no native bfloat16")),
    (BF16, {"ONEDNN_MAX_CPU_ISA": "avx512_core_bf16"}, [], Precision("mixed_bfloat16", "CPU with AVX512-BF16")),
    (BF16 | {"amx_bf16"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, [],
     Precision("mixed_bfloat16", "CPU with AVX512-BF16")),
    ({"amx_bf16"}, {"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_BF16"}, [],
     Precision("float32", "oneDNN limited to AVX512_CORE_BF16 by ONEDNN_MAX_CPU_ISA: no native bfloat16")),
    (BF16, {"TF_ENABLE_ONEDNN_OPTS": "0"}, [],
     Precision("float32", "oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0): no native bfloat16")),
    (set(), {}, [(8, 0)], Precision("mixed_bfloat16", "GPU compute capability 8.0")),
    (BF16, {}, [(9, 0), (7, 5)], Precision("float32", "GPU compute capability 7.5, below 8.0")),
])
def test_bfloat16_only_where_the_hardware_computes_it(flags, environment, gpus, expected):
    assert choose_precision(flags, environment, gpus) == expected


def test_an_explicit_precision_wins():
    assert training_precision("float32").policy == "float32"
    assert training_precision("mixed_bfloat16") == Precision("mixed_bfloat16", "asked for")


TRAIN_ONE_STEP = """
import numpy as np, tensorflow as tf
from dataclasses import replace
from lstm_composer.hardware import training_precision
from lstm_composer.model import build_model
from lstm_composer.presets import PRESETS
precision = training_precision("auto")
config = replace(PRESETS["fast"], sequence_length=8, lstm_units=(16, 16), dense_units=16, batch_size=8,
                 precision=precision.policy)
model = build_model(config, 20, for_training=True)
model.compile(loss="sparse_categorical_crossentropy", optimizer="rmsprop")
model.fit(np.random.randint(0, 20, (16, 8)), np.random.randint(0, 20, (16, 8)), epochs=1, verbose=0)  # dense targets
print("trained in", precision)
"""


@pytest.mark.parametrize("limit", [None, "AVX2"])
def test_auto_trains_on_this_machine_and_on_one_limited_to_avx2(limit):
    """With oneDNN limited to AVX2, bfloat16 would abort in the first step ("could not create a
    primitive descriptor for a matmul primitive"): auto must fall back to float32 there."""
    environment = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    environment.pop("ONEDNN_MAX_CPU_ISA", None)
    if limit:
        environment["ONEDNN_MAX_CPU_ISA"] = limit
    result = subprocess.run([sys.executable, "-c", TRAIN_ONE_STEP], env=environment, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    native = "avx512_bf16" in cpu_flags() or "amx_bf16" in cpu_flags()
    expected = "mixed_bfloat16" if native and not limit else "float32"
    assert f"trained in {expected} (" in result.stdout
