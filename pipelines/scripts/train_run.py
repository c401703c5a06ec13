"""One training job of the workflow: ``train_run.py --run-dir DIR --marker FILE -- key=value ...``.

Runs ``m3po train with key=value ...`` unless the run directory already holds a finished run (the
runner refuses to train a finished run again), then writes the marker, a small JSON record, only if
``status.json`` says ``finished``. A finished run whose recorded config differs from the asked one
is an error, so a changed grid never silently reuses stale runs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sacred.arg_parser import get_config_updates

# Keys that are not part of the run's recorded config, or (threads) do not change its results.
NOT_RECORDED = {"algo", "run_dir", "progress", "mongo_url", "threads"}


def read_status(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def config_differences(run_dir: Path, updates: list[str]) -> list[str]:
    """The asked ``key=value`` updates that the recorded ``config.json`` does not hold."""
    recorded = json.loads((run_dir / "config.json").read_text())
    asked, _ = get_config_updates(updates)
    differences = []

    def walk(asked_part: dict[str, Any], recorded_part: dict[str, Any], prefix: str) -> None:
        for key, value in asked_part.items():
            if not prefix and key in NOT_RECORDED:
                continue
            have = recorded_part.get(key) if isinstance(recorded_part, dict) else None
            if isinstance(value, dict):
                walk(value, have or {}, f"{prefix}{key}.")
            elif have != value:
                differences.append(f"{prefix}{key}: recorded {have!r}, asked {value!r}")

    walk(asked, recorded, "")
    return differences


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", type=Path, required=True)
    parser.add_argument("--marker", type=Path, required=True)
    parser.add_argument("updates", nargs="+", help="key=value updates for m3po train")
    args = parser.parse_args(argv)
    if read_status(args.run_dir).get("status") == "finished":
        differences = config_differences(args.run_dir, args.updates)
        if differences:
            print(
                f"{args.run_dir} holds a finished run with another config ({'; '.join(differences)}); "
                "delete it to train it again",
                file=sys.stderr,
            )
            return 1
        print(f"{args.run_dir} is finished already: not trained again", flush=True)
    else:
        command = [sys.executable, "-m", "m3po.cli", "train", "with", *args.updates]
        print("+", " ".join(command), flush=True)
        subprocess.run(command, check=True)
    status = read_status(args.run_dir)
    if status.get("status") != "finished":
        print(
            f"{args.run_dir}: status {status.get('status')!r} after training, not finished", file=sys.stderr
        )
        return 1
    record = {
        "run_dir": str(args.run_dir),
        "step": status["step"],
        "attempts": len(status.get("attempts", [])),
    }
    args.marker.write_text(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
