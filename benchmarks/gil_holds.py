"""Which operators hold Python's GIL long enough to stall the window, and in which call.

    .venv/bin/python benchmarks/gil_holds.py [--operators a,b,...] [--megapixels MP]
        [--cap S] [--defaults-only] [--threshold-ms T]

The window runs every operator on a worker thread, but a C extension that does not
release the GIL while it computes stops the UI thread too: a frame is 16 ms, and a call
that holds the GIL for 30 ms is a visible stutter however short the whole run. This
benchmark finds such calls for every registered operator, on the inputs of
``cancel_latency.py`` (the astronaut upscaled to ``--megapixels``, default 12: the size
where these calls get long; holes, scribbles, a click, a box, a moved copy):

- each variant runs in a forked child (killed at ``--cap`` seconds), as a window would
  run it a second time (a first run on a 0.1 MP copy has imported its modules; import
  stalls are ``native_import_stall.py``'s): the operator on a worker thread, freed memory kept in the process
  (:func:`maskwork.core.heap.keep_freed_memory`, set before any thread starts, as the
  window's ``main`` does);
- the child's main thread wakes every 2 ms and records when it ran: a gap between two
  wakes is time it could not get the GIL (or a CPU);
- the worker traces every call into C (``sys.setprofile``) that lasts longer than
  ``--threshold-ms`` (default 8), and each of the longest gaps is blamed on the traced
  calls that overlap it: function, module and the operator's line that made the call.
  Calls that release the GIL (most OpenCV and numpy kernels) show as long calls without
  gaps. Operator syntax (``a * b``, boolean indexing of a large array) makes no call the
  trace sees: so the worker's line in maskwork's code at the ticks on either side of a
  gap is shown too; a gap with no long call, between two quick lines, was the machine
  (another process, host steal).

The reference in the same run is the idle gap: the same ticking main thread while its
worker only sleeps, i.e. what the machine itself adds. Columns: seconds of the run, the
longest gap, the number of gaps over one frame (16 ms), and the calls behind the worst
gaps. Operators whose packages are missing, or that need a file, are listed as skipped.
Work sent to maskwork's warm child process (``stoppable.call_warm``) holds that process's
GIL, not the window's, and so does not show here: that is the point of sending it there.

Not a pass/fail test. The machine's load average is printed: on a shared 2-core machine
gaps move with the neighbours.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from maskwork.core.heap import keep_freed_memory  # noqa: E402

if __name__ == "__main__":
    # As the window's entry point does, before numpy starts its threads: a run reuses the
    # memory the last one freed instead of faulting it in again (maskwork.core.heap).
    keep_freed_memory()

import numpy as np  # noqa: E402
from cancel_latency import import_heavy_libraries, inputs_for, make_inputs, measurable, variants  # noqa: E402

from maskwork.operators.context import RunContext  # noqa: E402

#: The main thread's wake-up period, seconds.
TICK_S = 0.002
#: One frame at 60 Hz: a longer gap is a visible stall.
FRAME_S = 0.016
#: Gaps explained per variant.
WORST_GAPS = 3
#: Calls that wait (for a lock, a thread, the warm child's answer) and so never hold the
#: GIL: not blamed for a gap. A gap while the worker waits in one is another thread's
#: doing, or the CPU's (a child process busy on every core).
WAITING_CALLS = {"lock.acquire", "RLock.acquire", "sleep", "select", "poll", "wait"}
#: Size of the warm-up run that imports an operator's modules before it is measured.
SMALL_MEGAPIXELS = 0.1


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operators", default="", help="comma-separated operator ids (default: all)")
    parser.add_argument("--megapixels", type=float, default=12.0, help="photo size (default 12)")
    parser.add_argument("--cap", type=float, default=120.0, help="seconds after which a child is killed (default 120)")
    parser.add_argument("--defaults-only", action="store_true", help="default parameters only, not every method")
    parser.add_argument("--threshold-ms", type=float, default=8.0, help="trace C calls longer than this (default 8)")
    return parser.parse_args(argv)


def ticking(work, threshold_s: float) -> tuple[np.ndarray, list[str], list[tuple[float, float, str]], str | None]:
    """Run ``work`` on a thread that traces its C calls while this thread ticks.

    Returns the tick times, the worker's line in maskwork's code at each tick (see
    :func:`maskwork_line`), the traced calls as (start, seconds, description) and the
    error message of ``work`` if it raised.
    """
    calls: list[tuple[float, float, str]] = []
    open_calls: list[tuple[float, object]] = []
    outcome: dict = {}
    done = threading.Event()

    def trace(frame, event, arg) -> None:
        if event == "c_call" and getattr(arg, "__qualname__", "") in WAITING_CALLS:
            return  # waiting releases the GIL: a gap beside it is some other thread's, or the CPU's
        if event == "c_call":
            open_calls.append((time.perf_counter(), arg))
        elif event in ("c_return", "c_exception") and open_calls and getattr(arg, "__qualname__", "") not in WAITING_CALLS:
            started, function = open_calls.pop()
            seconds = time.perf_counter() - started
            if seconds > threshold_s:
                name = getattr(function, "__qualname__", None) or repr(function)
                module = getattr(function, "__module__", None) or type(getattr(function, "__self__", None)).__module__
                where = f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
                calls.append((started, seconds, f"{module}.{name} ({where})"))

    def run() -> None:
        sys.setprofile(trace)
        try:
            work()
        except Exception as error:  # a broken case must not stop the table
            outcome["error"] = f"{type(error).__name__}: {error}"[:80]
        finally:
            sys.setprofile(None)
            done.set()

    ticks = [time.perf_counter()]
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    lines = [maskwork_line(sys._current_frames().get(thread.ident))]
    while not done.is_set():
        time.sleep(TICK_S)
        ticks.append(time.perf_counter())
        lines.append(maskwork_line(sys._current_frames().get(thread.ident)))
    thread.join()
    return np.array(ticks), lines, calls, outcome.get("error")


def maskwork_line(frame) -> str:
    """``file:line`` of the innermost frame in maskwork's own code ("" if none): what the
    worker was running. Operator syntax (``a * b``, boolean indexing) makes no traced
    call, so a gap without a long call is told by the worker's line on either side."""
    while frame is not None:
        if f"{os.sep}maskwork{os.sep}" in frame.f_code.co_filename:
            return f"{Path(frame.f_code.co_filename).name}:{frame.f_lineno}"
        frame = frame.f_back
    return ""


def explain(ticks: np.ndarray, lines: list[str], calls: list[tuple[float, float, str]]) -> dict:
    """The run's seconds, longest gap, gaps over a frame, and the calls (or, without a long
    call, the worker's lines before and after) behind the worst gaps."""
    gaps = np.diff(ticks) - TICK_S
    worst = []
    for index in np.argsort(gaps)[::-1][:WORST_GAPS]:
        if gaps[index] <= FRAME_S:
            break
        start, end = ticks[index], ticks[index + 1]
        overlapping = sorted((c for c in calls if c[0] < end and c[0] + c[1] > start), key=lambda c: -c[1])
        blamed = "; ".join(f"{text} {seconds * 1000:.0f} ms" for _, seconds, text in overlapping[:2])
        where = f"worker at {lines[index] or '?'} -> {lines[index + 1] or '?'}"
        worst.append(f"{gaps[index] * 1000:.0f} ms: {blamed or 'no long call'}; {where}")
    return {
        "seconds": float(ticks[-1] - ticks[0]),
        "longest_ms": float(gaps.max() * 1000) if len(gaps) else 0.0,
        "over_frame": int((gaps > FRAME_S).sum()),
        "worst": worst,
    }


def measure(spec, inputs: dict, small_inputs: dict, params: dict, threshold_s: float, pipe) -> None:
    """In a child: run ``spec`` once on ``small_inputs`` (its modules imported, as in a
    window that has run it before: import stalls are ``native_import_stall.py``'s), then
    on ``inputs`` on a ticking worker, and send :func:`explain`'s dict (or
    ``{"error": message}``) down ``pipe``."""
    try:
        spec.run(small_inputs, params, RunContext())
    except Exception as error:
        pipe.send({"error": f"{type(error).__name__}: {error}"[:80]})
        pipe.close()
        os._exit(0)
    ticks, lines, calls, error = ticking(
        lambda: spec.run(inputs, params, RunContext(on_partial=lambda result: None)), threshold_s)
    pipe.send({"error": error} if error else explain(ticks, lines, calls))
    pipe.close()
    os._exit(0)  # a worker that outlived the run must not keep the child alive


def in_child(spec, inputs, small_inputs, params, threshold_s: float, cap: float) -> dict:
    """:func:`measure` in a forked child, killed if it outlives ``cap``."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=measure, args=(spec, inputs, small_inputs, params, threshold_s, sender))
    child.start()
    sender.close()
    answer = {"error": f"still running after {cap:.0f} s"}
    if receiver.poll(cap + 5.0):
        try:
            answer = receiver.recv()
        except EOFError:
            answer = {"error": "child died"}
    if child.is_alive():
        child.kill()
    child.join()
    return answer


def idle_gap(seconds: float = 2.0) -> float:
    """The longest tick gap, ms, while the worker only sleeps: what the machine adds."""
    ticks, _, _, _ = ticking(lambda: time.sleep(seconds), threshold_s=1.0)
    return float((np.diff(ticks) - TICK_S).max() * 1000)


def main(argv=None) -> int:
    args = parse_args(argv)
    wanted = {name for name in args.operators.split(",") if name}
    import_heavy_libraries()
    made, small = make_inputs(args.megapixels), make_inputs(SMALL_MEGAPIXELS)
    rows, cols = made["image"].shape[:2]
    print(f"image {cols} x {rows} ({rows * cols / 1e6:.1f} MP), C calls traced over {args.threshold_ms:g} ms, "
          f"cap {args.cap:.0f} s, load average {os.getloadavg()[0]:.2f}")
    print(f"idle reference: longest gap {idle_gap():.1f} ms with the worker asleep")
    header = f"{'operator':34} {'run s':>7} {'longest ms':>11} {'> 16 ms':>8}  worst gaps and the calls behind them"
    print(header)
    print("-" * len(header))
    stalling = []
    chosen, skipped = measurable(wanted)
    for spec in chosen:
        inputs, small_inputs = inputs_for(spec, made), inputs_for(spec, small)
        for name, params in variants(spec, args.defaults_only):
            found = in_child(spec, inputs, small_inputs, params, args.threshold_ms / 1000, args.cap)
            if "error" in found:
                print(f"{name:34} error: {found['error']}", flush=True)
                continue
            if found["over_frame"]:
                stalling.append(name)
            print(f"{name:34} {found['seconds']:7.2f} {found['longest_ms']:11.1f} {found['over_frame']:8d}  "
                  + " | ".join(found["worst"]), flush=True)
    for line in skipped:
        print(f"skipped {line}")
    print(f"{len(stalling)} with gaps over one frame: {', '.join(stalling) or 'none'}; "
          f"load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
