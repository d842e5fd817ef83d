"""Figure 7: how long a `wg` command takes that has nothing to do (`wg --help`, a tick with
nothing due), against the interpreter starting and doing nothing."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROUNDS = 7
WG = str(Path(sys.executable).parent / "wg")


def _median_seconds(command: list[str], env: dict[str, str], cwd: Path) -> float:
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(workdir: Path) -> dict[str, float]:
    env = {
        "PATH": os.environ["PATH"],
        "WG_INSTANCE_PATH": str(workdir / "startup"),
        "WG_SECRET_KEY": "bench",
        "WG_SMTP_HOST": "127.0.0.1",
    }
    subprocess.run([WG, "db", "upgrade"], env=env, cwd=workdir, check=True, capture_output=True)
    # The day's quiet digest is decided by the first tick: the measured ones find nothing due.
    subprocess.run([WG, "tick"], env=env, cwd=workdir, check=True, capture_output=True)
    return {
        "python": _median_seconds([sys.executable, "-c", "pass"], env, workdir),
        "help": _median_seconds([WG, "--help"], env, workdir),
        "tick": _median_seconds([WG, "tick"], env, workdir),
    }
