"""How long a first import in a worker thread stops the main thread: plain vs pre-loaded.

The window imports torch and SimpleITK in a worker the first time an operator needs them.
Python's import machinery opens their shared libraries with the GIL held, so the main
thread (the UI) waits. ``maskwork.operators.native_libraries.load_native_libraries``
opens them through ctypes first, which releases the GIL. Each row runs in a fresh
interpreter: a worker thread imports the package (and, for torch, runs one convolution)
while the main thread ticks every 2 ms; the row gives the longest gap between ticks and
the number of gaps over one frame (16 ms). Median over ``--runs`` interleaved runs.

    python benchmarks/native_import_stall.py [--runs 5] [--packages torch,SimpleITK]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, threading, time
sys.path.insert(0, ROOT)
package, preload = sys.argv[1], sys.argv[2] == "preload"
timing = {}

def work():
    start = time.perf_counter()
    if preload:
        from maskwork.operators.native_libraries import load_native_libraries
        load_native_libraries([package])
    loaded = time.perf_counter()
    module = __import__(package)
    if package == "torch":
        module.nn.Conv2d(3, 8, 3)(module.zeros(1, 3, 16, 16))
    timing.update(preload=loaded - start, total=time.perf_counter() - start)

worker = threading.Thread(target=work)
gaps, last = [], time.perf_counter()
worker.start()
while worker.is_alive():
    time.sleep(0.002)
    now = time.perf_counter()
    gaps.append(now - last)
    last = now
print(json.dumps({"longest": max(gaps), "over_frame": sum(gap > 0.016 for gap in gaps), **timing}))
""".replace("ROOT", repr(str(ROOT)))


def measure(package: str, mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, package, mode], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--packages", default="torch,SimpleITK")
    args = parser.parse_args(argv)
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; median of {args.runs} interleaved runs")
    print(f"{'package':<10} {'import':<22} {'longest gap':>12} {'gaps > 16 ms':>13} {'import s':>9}")
    for package in args.packages.split(","):
        rows = {"plain import": [], "pre-loaded (maskwork)": []}
        for _ in range(args.runs):
            rows["plain import"].append(measure(package, "plain"))
            rows["pre-loaded (maskwork)"].append(measure(package, "preload"))
        longest = {}
        for label, runs in rows.items():
            longest[label] = statistics.median(run["longest"] for run in runs)
            print(f"{package:<10} {label:<22} {longest[label] * 1000:>9.0f} ms {statistics.median(run['over_frame'] for run in runs):>13.0f}"
                  f" {statistics.median(run['total'] for run in runs):>9.2f}")
        print(f"{package:<10} {'ratio maskwork/plain':<22} {longest['pre-loaded (maskwork)'] / longest['plain import']:>12.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
