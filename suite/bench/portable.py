"""``m3po bench portable``: fingerprints of the libraries' CPU arithmetic in portable mode, and which of
them differ from the fingerprints recorded on other CPUs.

Portable mode (:mod:`m3po.portable`) is meant to give the same bits on every x86-64 CPU. Whether it
does is a fact about two machines, which no single machine can check: this command makes the check a
comparison of files. In a child process started with portable mode's environment it runs fixed probes
of each library a run's numbers pass through, each on inputs built from integers (exact on every CPU),
and hashes their outputs:

- torch (ATen kernels and MKL): seeded ``randn``; ``mm`` at a cpu-preset and a paper-preset size;
  ``exp``, ``tanh``, ``log1p``, ``sigmoid``, Mish, ``softmax`` over groups of 8 (SimNorm),
  ``layer_norm``; one forward, backward and Adam step of a small MLP;
- numpy (its ufunc loops and OpenBLAS): float64 and float32 ``exp``, ``tanh``, ``sin``, ``log``; a
  float64 matrix product;
- MuJoCo through the suite's envs: cartpole-swingup, walker-walk and mw-reach stepped with fixed
  actions (observations and rewards).

The JSON line has each probe's hash (``probes``), this machine's compute facts (CPU model and flags,
settings in force, torch's kernel capability), and for every fingerprint recorded in
``results/portable/fingerprints.json`` (one per CPU, committed) the probes that differ from this
machine's. ``--record`` stores this machine's fingerprint there (replacing an earlier one of the same
CPU). The same CPU and the same pinned libraries must give the same probes; another CPU should, if
portable mode holds, and where it does not, the differing probes name the library.
``--no-portable`` runs the probes without portable mode's settings, for comparison.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
RECORDED = Path("results") / "portable" / "fingerprints.json"
STEPS = 300  # env steps per MuJoCo probe (about a second each)


def _digest(*arrays: Any) -> str:
    """The first 16 hex digits of the sha256 of the arrays' bytes (numpy arrays or CPU tensors)."""
    import numpy as np

    h = hashlib.sha256()
    for a in arrays:
        a = a.detach().numpy() if hasattr(a, "detach") else np.asarray(a)
        h.update(str(a.dtype).encode() + str(a.shape).encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def _pattern(n: int, low: float = -3.0, high: float = 3.0):
    """``n`` float64 values in [low, high) from integer arithmetic: the same bits on every CPU."""
    import numpy as np

    k = (np.arange(n, dtype=np.int64) * 2654435761) % (1 << 20)  # Knuth's multiplicative hash
    return low + (high - low) * (k.astype(np.float64) / (1 << 20))


def _torch_probes() -> dict[str, str]:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    t = lambda n, low=-3.0, high=3.0: torch.from_numpy(_pattern(n, low, high)).float()  # noqa: E731
    x = t(512 * 128).reshape(512, 128)
    out = {
        "torch.randn": _digest(torch.randn(4096, generator=torch.Generator().manual_seed(0))),
        "torch.mm 512x128x128": _digest(x @ t(128 * 128, -0.1, 0.1).reshape(128, 128)),
        "torch.mm 4096x512x512": _digest(
            t(4096 * 512).reshape(4096, 512) @ t(512 * 512, -0.05, 0.05).reshape(512, 512)
        ),
        "torch.exp": _digest(torch.exp(x)),
        "torch.tanh": _digest(torch.tanh(x)),
        "torch.log1p": _digest(torch.log1p(x.abs())),
        "torch.sigmoid": _digest(torch.sigmoid(x)),
        "torch.mish": _digest(F.mish(x)),
        "torch.softmax groups of 8": _digest(torch.softmax(x.reshape(512, 16, 8), dim=-1)),
        "torch.layer_norm": _digest(F.layer_norm(x, (128,))),
    }
    # One training step of a small MLP (the layers M3PO's and TD-MPC2's models are built of).
    layers = [torch.nn.Linear(128, 128), torch.nn.LayerNorm(128), torch.nn.Mish(), torch.nn.Linear(128, 8)]
    mlp = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for i, p in enumerate(mlp.parameters()):
            p.copy_(t(p.numel(), -0.1, 0.1).reshape(p.shape) * (1 + i))
    adam = torch.optim.Adam(mlp.parameters(), lr=1e-3, foreach=True)
    loss = (mlp(x) - torch.tanh(x[:, :8])).square().mean()
    loss.backward()
    grads = [p.grad.clone() for p in mlp.parameters()]
    adam.step()
    out["torch.mlp backward"] = _digest(loss, *grads)
    out["torch.adam step"] = _digest(*mlp.parameters())
    return out


def _numpy_probes() -> dict[str, str]:
    import numpy as np

    x = _pattern(1 << 16)
    out = {}
    for dtype in (np.float64, np.float32):
        v = x.astype(dtype)
        name = "float64" if dtype is np.float64 else "float32"
        for fn in (np.exp, np.tanh, np.sin):
            out[f"numpy.{fn.__name__} {name}"] = _digest(fn(v))
        out[f"numpy.log {name}"] = _digest(np.log(np.abs(v) + 1))
    a = _pattern(256 * 256).reshape(256, 256)
    out["numpy matmul (OpenBLAS)"] = _digest(a @ a.T)
    return out


def _env_probes() -> dict[str, str]:
    import numpy as np

    from m3po.envs import make_env

    out = {}
    for task in ("cartpole-swingup", "walker-walk", "mw-reach"):
        env = make_env(task, seed=0)
        obs, _ = env.reset(seed=0)
        n = int(np.prod(env.action_space.shape))
        actions = _pattern(STEPS * n, -1.0, 1.0).reshape(STEPS, n).astype(env.action_space.dtype)
        seen, rewards = [obs], []
        for a in actions:
            obs, reward, _, truncated, _ = env.step(a)
            seen.append(obs)
            rewards.append(reward)
            if truncated:
                obs, _ = env.reset()
        env.close()
        out[f"mujoco {task}"] = _digest(np.stack(seen), np.asarray(rewards, dtype=np.float64))
    return out


def cpu_id() -> str:
    """Vendor, family, model and stepping (``/proc/cpuinfo``): two parts that a hypervisor names alike
    ("AMD EPYC") may still be different microarchitectures."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("vendor_id", "cpu family", "model", "stepping"):
                    fields.setdefault(key.strip(), value.strip())
    except OSError:
        return "unknown"
    return " ".join(
        f"{k} {fields[k]}" for k in ("vendor_id", "cpu family", "model", "stepping") if k in fields
    )


def probe() -> dict[str, Any]:
    """Every probe's hash and the compute facts of this process (run it in the child process)."""
    from m3po.trainer.run_record import compute_facts

    compute = {**compute_facts(), "cpu_id": cpu_id()}
    return {"probes": {**_torch_probes(), **_numpy_probes(), **_env_probes()}, "compute": compute}


def _child_environment(portable_mode: bool) -> dict[str, str]:
    from m3po import portable

    if not portable_mode:
        env = {k: v for k, v in os.environ.items() if k not in portable.SETTINGS}
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = "1"  # one thread either way: only the paths differ
        return env
    return portable.environment(os.environ, portable._numpy_dispatch())


def measure(portable_mode: bool = True) -> dict[str, Any]:
    """Run :func:`probe` in a child process (with portable mode's environment from its start)."""
    code = "import json, suite.bench.portable as p; print(json.dumps(p.probe()))"
    env = {**_child_environment(portable_mode), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "disable")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, timeout=600
    )
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["(no output)"]
        raise SystemExit(f"m3po bench portable: the probe process failed: {tail[0]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def cpu_key(compute: dict[str, Any]) -> tuple:
    """What makes two fingerprints' machines the same CPU for this comparison."""
    flags = tuple(compute.get("cpu_flags") or ())
    return (compute.get("cpu_model"), compute.get("cpu_id"), flags, compute.get("machine"))


def compare(probes: dict[str, str], compute: dict[str, Any], recorded: list[dict[str, Any]]) -> list[dict]:
    """Per recorded fingerprint: its CPU, whether it is this CPU, and the probes that differ.

    :param probes: this machine's probes (name -> hash)
    :param compute: this machine's compute facts
    :param recorded: fingerprints as stored in :data:`RECORDED` (each with ``probes``, ``compute``)
    :return: one dict per recorded fingerprint with the same portable setting: ``cpu``,
        ``same_cpu``, ``differ`` (probe names), ``missing`` (probes one side lacks)
    """
    rows = []
    for entry in recorded:
        theirs = entry.get("probes", {})
        if bool(entry.get("compute", {}).get("portable")) != bool(compute.get("portable")):
            continue
        rows.append(
            {
                "cpu": entry.get("compute", {}).get("cpu_model"),
                "recorded": entry.get("date"),
                "same_cpu": cpu_key(entry.get("compute", {})) == cpu_key(compute),
                "differ": sorted(k for k in probes.keys() & theirs.keys() if probes[k] != theirs[k]),
                "missing": sorted(probes.keys() ^ theirs.keys()),
            }
        )
    return rows


def read_recorded(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return json.loads(path.read_text())["fingerprints"]


def record(path: Path, entry: dict[str, Any]) -> None:
    """Store ``entry``, replacing a fingerprint of the same CPU and portable setting."""
    kept = [
        e
        for e in read_recorded(path)
        if (cpu_key(e["compute"]), bool(e["compute"].get("portable")))
        != (cpu_key(entry["compute"]), bool(entry["compute"].get("portable")))
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"written_by": "m3po bench portable --record", "fingerprints": [*kept, entry]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=1) + "\n")
    tmp.replace(path)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--record", action="store_true", help=f"store this CPU's fingerprint in {RECORDED}")
    parser.add_argument("--no-portable", action="store_true", help="probe without portable mode's settings")


def main(args: argparse.Namespace) -> dict[str, Any]:
    from suite.experiment import library_versions

    measured = measure(portable_mode=not args.no_portable)
    path = REPO / RECORDED
    figures = {
        "benchmark": "portable",
        "portable": not args.no_portable,
        "compute": measured["compute"],
        "probes": measured["probes"],
        "compared": compare(measured["probes"], measured["compute"], read_recorded(path)),
    }
    if args.record:
        versions = library_versions()
        entry = {
            "date": datetime.date.today().isoformat(),
            "versions": {k: versions[k] for k in sorted(versions)},
            "compute": measured["compute"],
            "probes": measured["probes"],
        }
        record(path, entry)
        figures["recorded_in"] = str(RECORDED)
    return figures
