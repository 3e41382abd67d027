"""What this machine's CPU can do, read once from /proc/cpuinfo.

    python -c "from prompt_recovery.hardware import native_bf16; print(native_bf16())"

Used to pick kernels and precisions that are fast here: OpenBLAS's AVX-512 kernels for
llama.cpp (`inference.cpu_probe.openblas_coretype`) and bf16 autocast for CPU training only where the CPU
computes bf16 natively (`training.train.precision_flags`): without AVX512_BF16 or AMX, PyTorch emulates
bf16 matmuls and training runs many times slower than fp32 (docs/training_speed.md).
"""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of the first processor in /proc/cpuinfo (empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(flags=None) -> bool:
    """True where the CPU has bf16 matrix instructions (AVX512_BF16 or AMX-BF16)."""
    flags = cpu_flags() if flags is None else flags
    return "avx512_bf16" in flags or "amx_bf16" in flags


def matmul_rate(dtype, m: int, k: int, n: int, seconds: float) -> float:
    """FLOP/s of repeated (m x k) @ (k x n) matmuls in `dtype` on this CPU, timed for about `seconds`."""
    import time

    import torch

    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (time.perf_counter() - t0)


@functools.lru_cache(maxsize=1)
def bf16_faster_than_fp32(seconds: float = 0.15) -> bool:
    """True where bf16 matmuls at a small model's training shapes beat fp32 on this CPU, measured once.

    Native bf16 instructions are necessary but not sufficient: on a Xeon with AVX512_BF16 but no
    AMX, PyTorch's bf16 matmul ran at about half the fp32 rate (docs/training_speed.md). CPUs without
    native bf16 are not measured (emulated bf16 is always slower).
    """
    if not native_bf16():
        return False
    import torch

    shape = (512, 576, 1536)  # a training micro-batch through one of SmolLM2's MLP projections
    return matmul_rate(torch.bfloat16, *shape, seconds) > 1.1 * matmul_rate(torch.float32, *shape, seconds)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, e.g. under `taskset`), at least 1."""
    import os

    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)
