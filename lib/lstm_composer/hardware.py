"""What the machine a rank runs on computes natively, read on that machine.

bfloat16 arithmetic (`mixed_bfloat16`) pays only where the hardware has it: CPUs with
AVX512-BF16 or AMX (through oneDNN), GPUs of compute capability 8 or more. Elsewhere it is
slower than float32, and oneDNN without those instructions cannot even build some of its
matmuls ("could not create a primitive descriptor"). `training_precision` resolves a
preset's "auto" on each rank, so a cluster of mixed machines gets the right choice on each.
"""
from __future__ import annotations

import os
from typing import Mapping, NamedTuple

# oneDNN's CPU ISA levels, lowest first (ONEDNN_MAX_CPU_ISA, older name DNNL_MAX_CPU_ISA); the
# first with bfloat16 dot products is AVX512_CORE_BF16, the first with AMX AVX512_CORE_AMX.
ONEDNN_ISAS = ("SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI",
               "AVX512_CORE_BF16", "AVX10_1_512", "AVX512_CORE_FP16", "AVX512_CORE_AMX",
               "AVX10_1_512_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512_AMX_FP16")
_FIRST_BF16_ISA = ONEDNN_ISAS.index("AVX512_CORE_BF16")
_FIRST_AMX_ISA = ONEDNN_ISAS.index("AVX512_CORE_AMX")


class Precision(NamedTuple):
    """The arithmetic a rank trains in, and why."""

    policy: str  # "float32" or "mixed_bfloat16"
    reason: str

    def __str__(self) -> str:
        return f"{self.policy} ({self.reason})"


def cpu_flags(cpuinfo: str = "/proc/cpuinfo") -> set[str]:
    """The instruction-set flags of the first processor listed (Linux); empty where unreadable."""
    try:
        with open(cpuinfo) as lines:
            for line in lines:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def gpu_capabilities() -> list[tuple[int, int]]:
    """Compute capability of each GPU TensorFlow sees."""
    import tensorflow as tf

    capabilities = []
    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))
    return capabilities


def choose_precision(flags: set[str], environment: Mapping[str, str],
                     gpus: list[tuple[int, int]]) -> Precision:
    """`mixed_bfloat16` where the hardware computes bfloat16 natively, else `float32`.

    With GPUs, TensorFlow trains on them: all must be of compute capability 8 or more. On a CPU
    it needs AVX512-BF16 or AMX, with oneDNN on (`TF_ENABLE_ONEDNN_OPTS` not 0) and allowed to
    use them (`ONEDNN_MAX_CPU_ISA` not below AVX512_CORE_BF16, or AVX512_CORE_AMX for AMX only).
    """
    if gpus:
        lowest = min(gpus)
        if lowest >= (8, 0):
            return Precision("mixed_bfloat16", f"GPU compute capability {lowest[0]}.{lowest[1]}")
        return Precision("float32", f"GPU compute capability {lowest[0]}.{lowest[1]}, below 8.0")
    bf16, amx = "avx512_bf16" in flags, "amx_bf16" in flags
    if not (bf16 or amx):
        return Precision("float32", "CPU without AVX512-BF16 or AMX")
    if environment.get("TF_ENABLE_ONEDNN_OPTS", "1").strip() == "0":
        return Precision("float32", "oneDNN is off (TF_ENABLE_ONEDNN_OPTS=0): no native bfloat16")
    limit = (environment.get("ONEDNN_MAX_CPU_ISA") or environment.get("DNNL_MAX_CPU_ISA") or "ALL").strip().upper()
    level = ONEDNN_ISAS.index(limit) if limit in ONEDNN_ISAS else len(ONEDNN_ISAS)  # ALL, DEFAULT: no limit
    if bf16 and level >= _FIRST_BF16_ISA:
        return Precision("mixed_bfloat16", "CPU with AVX512-BF16")
    if amx and level >= _FIRST_AMX_ISA:
        return Precision("mixed_bfloat16", "CPU with AMX")
    return Precision("float32", f"oneDNN limited to {limit} by ONEDNN_MAX_CPU_ISA: no native bfloat16")


def training_precision(setting: str) -> Precision:
    """`setting` itself, or for "auto" the choice for this machine (`choose_precision`)."""
    if setting != "auto":
        return Precision(setting, "asked for")
    return choose_precision(cpu_flags(), os.environ, gpu_capabilities())
