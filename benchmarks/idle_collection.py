"""What the window's idle garbage collection costs the UI thread once torch is loaded.

The window collects cycles every 2 s while no worker runs. Each row runs in a fresh
interpreter set up as the window is (start-up objects frozen), imports torch and
SimpleITK as a deep-learning or registration operator's first run does, then times five
idle ticks: the plain full collection the window used to make (``gc.collect()``), and
maskwork's ``collect_idle_garbage`` (freezes once after imports, then collects).

    python benchmarks/idle_collection.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import gc, json, sys, time
sys.path.insert(0, ROOT)
from maskwork.app.application import collect_idle_garbage
gc.disable()
gc.freeze()  # as manage_garbage does once the window is shown
import maskwork.app.application as application
application._modules_at_last_freeze = len(sys.modules)
import SimpleITK, torch
tick = gc.collect if sys.argv[1] == "plain" else collect_idle_garbage
times = []
for _ in range(5):
    start = time.perf_counter()
    tick()
    times.append(time.perf_counter() - start)
print(json.dumps(times))
""".replace("ROOT", repr(str(ROOT)))


def ticks(mode: str) -> list[float]:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True,
                          env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; five idle ticks after importing torch and SimpleITK")
    rows = {"plain gc.collect()": ticks("plain"), "collect_idle_garbage (maskwork)": ticks("maskwork")}
    for label, times in rows.items():
        print(f"{label:<34} " + "  ".join(f"{t * 1000:6.1f}" for t in times) + " ms")
    plain, ours = rows.values()
    print(f"{'ratio maskwork/plain, ticks 2-5':<34} {sum(ours[1:]) / sum(plain[1:]):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
