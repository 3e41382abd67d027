"""What this machine offers the llama.cpp engine: is llama-cpp-python installed and loading, with
OpenBLAS, which OpenBLAS kernels suit the CPU, and how many cores are idle.

    python -m prompt_recovery.inference.cpu_probe --check-llama-cpp   # is the OpenBLAS build installed and loading?

scripts/setup.sh builds llama-cpp-python with its OpenBLAS backend against the scipy-openblas32 wheel
and runs the check above to skip the build when it is already there. `load_openblas` loads that
library once per process (process-global: `_OPENBLAS`), before llama.cpp, with the kernels of
`openblas_coretype` (PROMPT_RECOVERY_OPENBLAS_CORETYPE, else SkylakeX where the CPU has AVX-512).
`default_threads` (PROMPT_RECOVERY_THREADS, else the cores not busy right now) sizes the worker pool
of `llama_cpp_engine`. Measurements behind these choices: docs/speed.md.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from pathlib import Path

from prompt_recovery.hardware import cpu_flags

LLAMA_CPP_INSTALL = "pip install llama-cpp-python"

_OPENBLAS: dict = {}  # {"core": kernel name} once the OpenBLAS library for llama.cpp is loaded
# the AVX-512 subsets OpenBLAS's SkylakeX kernels use
_AVX512 = {"avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512cd"}


def _cpu_flags() -> set[str]:
    return set(cpu_flags())


def openblas_coretype() -> str | None:
    """OpenBLAS kernels for llama.cpp's BLAS backend: $PROMPT_RECOVERY_OPENBLAS_CORETYPE, else
    ``SkylakeX`` (AVX-512) where the CPU has AVX-512, else None (OpenBLAS's own choice).

    OpenBLAS does not recognise every AVX-512 CPU (docs/speed.md, "OpenBLAS kernels"), so the
    choice is made from the CPU flags. It applies only to the OpenBLAS copy loaded here;
    `OPENBLAS_CORETYPE` is left as it is for numpy and everything else."""
    env = os.environ.get("PROMPT_RECOVERY_OPENBLAS_CORETYPE")
    if env:
        return env
    return "SkylakeX" if _AVX512 <= _cpu_flags() else None


def load_openblas() -> None:
    """Load scipy-openblas32 (the BLAS of llama.cpp's OpenBLAS build, see scripts/setup.sh) before
    llama.cpp, with the kernels of `openblas_coretype`; a no-op where it is not installed."""
    if _OPENBLAS or importlib.util.find_spec("scipy_openblas32") is None:
        return
    import ctypes

    core, old = openblas_coretype(), os.environ.get("OPENBLAS_CORETYPE")
    if core:  # read once, when the library initialises (importing scipy_openblas32 may already load it)
        os.environ["OPENBLAS_CORETYPE"] = core
    try:
        import scipy_openblas32

        path = Path(scipy_openblas32.get_lib_dir()) / "libscipy_openblas.so"
        lib = ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return
    finally:
        if core:
            os.environ.pop("OPENBLAS_CORETYPE") if old is None else os.environ.__setitem__("OPENBLAS_CORETYPE", old)
    lib.scipy_openblas_get_corename.restype = ctypes.c_char_p
    _OPENBLAS["core"] = lib.scipy_openblas_get_corename().decode()


def openblas_core() -> str | None:
    """The OpenBLAS kernels loaded for llama.cpp (e.g. "SkylakeX"); None before `load_openblas` loaded them."""
    return _OPENBLAS.get("core")


def llama_cpp_problem() -> str | None:
    """None when llama-cpp-python imports; else why not, in one line: "not installed", or the error of an
    installed copy that does not load (a broken or mismatched shared library, a missing dependency)."""
    load_openblas()
    try:
        import llama_cpp  # noqa: F401
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] == "llama_cpp":
            return "not installed"
        return f"it does not load: {type(e).__name__}: {_first_line(e)}"
    except (ImportError, OSError, RuntimeError) as e:  # llama_cpp raises RuntimeError when its library fails to load
        return f"it does not load: {type(e).__name__}: {_first_line(e)}"
    return None


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [""])[0]


def llama_cpp_available() -> bool:
    return llama_cpp_problem() is None


def llama_cpp_has_blas() -> bool:
    """Whether the installed llama.cpp was built with its BLAS backend (scripts/setup.sh builds it so)."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.origin:
        return False
    return any((Path(spec.origin).parent / "lib").glob("libggml-blas.*"))


def _busy_cores(window: float = 0.3) -> float:
    """Cores other processes keep busy right now: CPU time they used over `window` seconds
    (/proc/stat minus this process), else the 1-minute load average."""
    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields[:8]), fields[3] + fields[4], time.process_time()  # total, idle + iowait, ours

    try:
        t0, i0, c0 = sample()
        time.sleep(window)
        t1, i1, c1 = sample()
        ticks = os.sysconf("SC_CLK_TCK")
        wall = window * ticks  # ticks per core over the window
        return max(0.0, ((t1 - t0) - (i1 - i0)) - (c1 - c0) * ticks) / wall
    except (OSError, ValueError, IndexError, ZeroDivisionError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0


def default_threads() -> int:
    """CPU threads for llama.cpp: $PROMPT_RECOVERY_THREADS, else the usable cores not busy right now.

    llama.cpp's threads spin at barriers and a worker per core assumes the core to itself; with more
    threads than idle cores (a shared machine) generation gets several times slower, so cores that
    other processes are using (measured over 0.3 s) are left alone (at least one thread is used).
    """
    env = os.environ.get("PROMPT_RECOVERY_THREADS")
    if env:
        return max(1, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        cores = os.cpu_count() or 1
    return max(1, min(cores, cores - int(_busy_cores() + 0.5)))


def _main(argv=None) -> int:
    """`python -m prompt_recovery.inference.cpu_probe --check-llama-cpp`: exit 0 when llama.cpp with its OpenBLAS
    backend is installed and loads (scripts/setup.sh uses it to skip the build)."""
    import argparse

    ap = argparse.ArgumentParser(prog="python -m prompt_recovery.inference.cpu_probe")
    ap.add_argument("--check-llama-cpp", action="store_true", help="exit 0 if llama.cpp + OpenBLAS is usable")
    a = ap.parse_args(argv)
    if a.check_llama_cpp:
        ok, blas = llama_cpp_available(), llama_cpp_has_blas()
        core = openblas_core() or "not loaded"
        print(f"llama-cpp-python: {'importable' if ok else 'missing'}; BLAS backend: {'yes' if blas else 'no'}; "
              f"OpenBLAS kernels: {core}")
        return 0 if ok and blas and openblas_core() else 1
    ap.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(_main())
