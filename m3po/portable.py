"""Portable mode: CPU runs that give the same bits on every x86-64 CPU, as far as the libraries allow.

A run with ``portable=True`` (a :class:`m3po.config.RunConfig` field, recorded in ``config.json``)
computes with the code paths every x86-64 CPU has, on one thread:

==========================  =====================================  ===================================
library                     what picks the code path by CPU        portable setting
==========================  =====================================  ===================================
torch (ATen)                kernel dispatch: DEFAULT/AVX2/AVX512   ``ATEN_CPU_CAPABILITY=default``
MKL (torch's BLAS)          its own dispatch (SSE4.2 ... AVX-512)  ``MKL_CBWR=COMPATIBLE`` (conditional
                                                                   numerical reproducibility)
oneDNN (torch's mkldnn)     its JIT's ISA                          ``ONEDNN_MAX_CPU_ISA=SSE41``
                                                                   (and ``DNNL_MAX_CPU_ISA``)
numpy                       SIMD dispatch (AVX2, AVX-512 loops)    ``NPY_DISABLE_CPU_FEATURES``: every
                                                                   dispatched feature (baseline only)
OpenBLAS (numpy's BLAS)     kernel per core type                   ``OPENBLAS_CORETYPE=Prescott``
glibc's libm (exp, sin,     ifunc: FMA/AVX2 variants               ``GLIBC_TUNABLES=glibc.cpu.hwcaps=
 ... of torch's DEFAULT                                            -AVX,-AVX2,-FMA,-FMA4``
 kernels, numpy, MuJoCo)
threads                     torch/OpenMP/MKL default: one per core ``OMP_NUM_THREADS=1``,
                                                                   ``MKL_NUM_THREADS=1``,
                                                                   ``OPENBLAS_NUM_THREADS=1``
==========================  =====================================  ===================================

The libraries read these when they load, so they must be in the environment when the process
starts: ``m3po train with ... portable=True`` and the workflow's ``workflow/scripts/train.py``
re-execute themselves with them (:func:`reexec_if_asked`); a process that cannot (``m3po train``
called in-process) is refused by :func:`problems`, before any file is written. What stays
machine-dependent: MuJoCo's own compiled code (one build per wheel, no runtime dispatch), the
library versions and glibc's version (the same wheels and image are assumed), and GPUs.

Measured on two machines, the pinning is not enough: the same portable run gave other bits on an AMD
EPYC (Zen 1) than on an Intel Xeon (Ice Lake); ``m3po bench portable`` fingerprints each library to find
which (README, "Reproducibility across machines").

It imports the standard library only: it runs before numpy and torch are loaded (numpy is imported
only by :func:`reexec_if_asked`, in the process about to be replaced, to list its dispatched features).
"""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Mapping, Sequence

# Set by the re-execution: the environment below was in force from the start of this process.
MARKER = "M3PO_PORTABLE"
GLIBC_HWCAPS = "glibc.cpu.hwcaps=-AVX,-AVX2,-FMA,-FMA4"
FIXED: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "default",
    "MKL_CBWR": "COMPATIBLE",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
    "DNNL_MAX_CPU_ISA": "SSE41",  # oneDNN's older name (both are read)
    "OPENBLAS_CORETYPE": "Prescott",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
}
# What a run records of the settings in force (also outside portable mode).
SETTINGS = (
    *FIXED,
    "MKL_ENABLE_INSTRUCTIONS",
    "NPY_DISABLE_CPU_FEATURES",
    "NPY_ENABLE_CPU_FEATURES",
    "GLIBC_TUNABLES",
    MARKER,
)


def asked(words: Sequence[str]) -> bool:
    """Whether ``m3po train`` words ask for portable mode (``portable=True``; any case of ``true``, as
    the config reads a bool)."""
    return any(w.replace(" ", "").lower() == "portable=true" for w in words)


def _numpy_dispatch() -> list[str] | None:
    """numpy's dispatched CPU features (what ``NPY_DISABLE_CPU_FEATURES`` may name), None without numpy.

    Imports numpy: call it only in a process that is about to be replaced (:func:`reexec_if_asked`).
    """
    try:
        from numpy._core import _multiarray_umath as umath  # noqa: PLC0415 - see the docstring
    except ImportError:
        return None
    return list(getattr(umath, "__cpu_dispatch__", []))


def _with_hwcaps(tunables: str) -> str:
    """``GLIBC_TUNABLES`` with portable mode's ``glibc.cpu.hwcaps`` (other tunables kept)."""
    kept = [t for t in tunables.split(":") if t and not t.startswith("glibc.cpu.hwcaps=")]
    return ":".join([*kept, GLIBC_HWCAPS])


def environment(environ: Mapping[str, str], numpy_dispatch: Sequence[str] | None) -> dict[str, str]:
    """``environ`` with portable mode's settings (see the module docstring)."""
    # numpy refuses NPY_ENABLE_ and NPY_DISABLE_CPU_FEATURES together; MKL_ENABLE_INSTRUCTIONS is kept
    # (MKL_CBWR overrides it).
    env = {k: v for k, v in environ.items() if k != "NPY_ENABLE_CPU_FEATURES"}
    env.update(FIXED)
    env["GLIBC_TUNABLES"] = _with_hwcaps(environ.get("GLIBC_TUNABLES", ""))
    if numpy_dispatch:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(numpy_dispatch)
    env[MARKER] = "1"
    return env


def reexec_if_asked(words: Sequence[str]) -> None:
    """Replace this process by the same command with portable mode's environment, if ``words`` ask for
    portable mode and the environment is not in force yet; else return.

    Call it first thing in a process's entry point, before numpy or torch are imported. The new
    process runs the same command line (``sys.orig_argv``) with the same interpreter.
    """
    if not asked(words) or os.environ.get(MARKER) == "1":
        return
    env = environment(os.environ, _numpy_dispatch())
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, list(sys.orig_argv), env)


def problems(threads: int = 0) -> list[str]:
    """Why portable mode is not in force in this process ([] when it is).

    Checks the environment the process started with (:data:`MARKER` and the fixed settings), and
    what the libraries already loaded chose: torch's kernel capability, numpy's enabled dispatch
    features, torch's thread count. ``threads`` is the run's ``threads`` field (0 or 1 in portable
    mode).
    """
    out = []
    if os.environ.get(MARKER) != "1":
        out.append(f"{MARKER}=1 is not set (the settings were not in force when the process started)")
    out += [f"{k}={os.environ.get(k)!r}, not {v!r}" for k, v in FIXED.items() if os.environ.get(k) != v]
    if GLIBC_HWCAPS not in os.environ.get("GLIBC_TUNABLES", "").split(":"):
        out.append(f"GLIBC_TUNABLES lacks {GLIBC_HWCAPS}")
    if threads > 1:
        out.append(f"threads={threads}: portable mode runs on one thread (threads=1 or 0)")
    torch = sys.modules.get("torch")
    if torch is not None:
        capability = torch.backends.cpu.get_cpu_capability()
        if capability != "DEFAULT":
            out.append(f"torch was loaded with kernel capability {capability}, not DEFAULT")
        if torch.get_num_threads() != 1:
            out.append(f"torch runs {torch.get_num_threads()} threads, not 1")
    umath = sys.modules.get("numpy._core._multiarray_umath")
    if umath is not None:
        enabled = [f for f in getattr(umath, "__cpu_dispatch__", []) if umath.__cpu_features__.get(f)]
        if enabled:
            out.append(f"numpy was loaded with dispatched CPU features on: {' '.join(enabled)}")
    return out


def refusal(threads: int = 0) -> str | None:
    """The one-line error of a ``portable=True`` run in a process without portable mode, or None."""
    found = problems(threads)
    if not found:
        return None
    return (
        "portable=True needs its settings in force from the start of the process ("
        + "; ".join(found)
        + "). Start it as `m3po train with ... portable=True` or through workflow/scripts/train.py, which "
        "re-execute themselves with them (m3po/portable.py lists them)"
    )


def cpu_flags() -> list[str]:
    """The CPU's SIMD flags that decide the libraries' code paths (sse4_2, avx, avx2, fma, avx512*)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    wanted = ("sse4_2", "avx", "avx2", "fma", "amx")
                    return sorted(x for x in value.split() if x in wanted or x.startswith("avx512"))
    except OSError:
        pass
    return []


def host_facts() -> dict[str, object]:
    """What a run records of the CPU and the settings in force (torch's and numpy's choices are added by
    :func:`m3po.trainer.run_record.compute_facts`)."""
    from m3po.record import cpu_model  # here, not on top: this module loads on the standard library alone

    return {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "machine": platform.machine(),
        "libc": " ".join(platform.libc_ver()).strip(),
        "portable": not problems(),
        "settings": {k: os.environ[k] for k in SETTINGS if k in os.environ},
    }
