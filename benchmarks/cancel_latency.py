"""Cancel latency of every registered operator on a ~3 MP photo: how long computation goes
on after Cancel.

    .venv/bin/python benchmarks/cancel_latency.py [--operators a,b,...] [--delays 0.3,1.5]
        [--fractions 0.5,0.9] [--cap S] [--defaults-only] [--megapixels MP]

For every registered operator (and, for operators with a method choice, every method;
superpixels also at full size, ``coarse_megapixels=0``, and the scribble CNN with
``working_megapixels=3``; intensity registration also
with each deformable stage),
inputs are built on scikit-image's astronaut upscaled to ``--megapixels`` (default 3):
a hole of about 5 % of the picture as ``mask`` (inpainting) or the astronaut's rough
outline (mask refinement), foreground/background scribbles as ``markers``, a foreground
click as ``points`` (four landmark pairs for landmark registration), a box around her as
``rect`` and, as ``image2``, the photo turned by 2 degrees and shifted (the PSF image for
deblurring: a small Gaussian).

Each measurement runs in a forked child process, so that a run that ignores Cancel can be
killed at ``--cap`` seconds instead of holding the machine:

1. the run uncancelled: seconds to its result, or "> cap";
2. for each delay in ``--delays`` (default 0.3 and 1.5 s: the start of a run) and at
   each of ``--fractions`` of the uncancelled run (default half and 90 %, so that a slow
   final step is hit too; of the cap for a run that outlived it): the operator runs in a thread, the child sets the run's cancel event after the
   delay and measures the seconds until the thread ends (Cancelled raised, or the result
   returned). A run that ended before the delay is reported as "done" and not counted.

Columns: seconds uncancelled, the median and the largest latency over the delays, and the
verdict against the target of issue 15 (< 1 s). The target is the number itself; there is
no plain-library counterpart to compare with. Operators whose packages are missing, or
that need a file (a model, a checkpoint), are listed as skipped with the reason. torch and
SimpleITK are imported before the children fork, as in a window that has run such an
operator once, so import time is not counted as latency. The machine's load average is
printed: on a shared 2-core machine every number moves.

Not a pass/fail test.
"""

from __future__ import annotations

import argparse
import importlib.util
import multiprocessing
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from maskwork.operators.context import Cancelled, RunContext  # noqa: E402
from maskwork.operators.registry import all_operators  # noqa: E402

#: Operators that read a file the benchmark cannot make (a trained model, a checkpoint).
NEEDS_FILE = {
    "learned_inpaint": "needs the LaMa weights (Deep learning > Models...)",
    "run_model": "needs a model file (model=...)",
    "segment_anything": "needs a Segment Anything checkpoint",
}
#: The latency issue 15 asks for.
TARGET_S = 1.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--operators", default="", help="comma-separated operator ids (default: all)")
    parser.add_argument("--delays", default="0.3,1.5", help="seconds from start to Cancel (default 0.3,1.5)")
    parser.add_argument("--fractions", default="0.5,0.9", help="also cancel at these fractions of the uncancelled run (default 0.5,0.9)")
    parser.add_argument("--cap", type=float, default=60.0, help="seconds after which a child is killed (default 60)")
    parser.add_argument("--defaults-only", action="store_true", help="default parameters only, not every method")
    parser.add_argument("--megapixels", type=float, default=3.0, help="photo size (default 3)")
    return parser.parse_args(argv)


def make_inputs(megapixels: float) -> dict:
    """Every input an operator may take, built on the astronaut photo at ``megapixels``."""
    from skimage import data

    side = int(round(np.sqrt(megapixels * 1e6)))
    image = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
    scale = side / 512.0

    def at(row: float, col: float) -> tuple[int, int]:
        return int(row * scale), int(col * scale)

    markers = np.zeros((side, side), np.uint8)
    cv2.line(markers, at(150, 230)[::-1], at(400, 250)[::-1], 1, max(2, int(4 * scale)))
    cv2.line(markers, at(20, 20)[::-1], at(20, 490)[::-1], 2, max(2, int(4 * scale)))
    cv2.line(markers, at(20, 470)[::-1], at(490, 470)[::-1], 2, max(2, int(4 * scale)))
    hole = np.zeros((side, side), np.uint8)
    centre = at(300, 380)
    cv2.ellipse(hole, centre[::-1], (int(0.15 * side), int(0.1 * side)), 30, 0, 360, 1, -1)
    outline = np.zeros((side, side), np.uint8)
    cv2.ellipse(outline, at(280, 240)[::-1], (int(0.25 * side), int(0.4 * side)), 0, 0, 360, 1, -1)
    turn = cv2.getRotationMatrix2D((side / 2, side / 2), 2.0, 1.0)
    turn[:, 2] += (0.01 * side, -0.008 * side)
    moved = cv2.warpAffine(image, turn, (side, side), borderMode=cv2.BORDER_REFLECT)
    landmarks_fixed = [at(100, 100), at(100, 400), at(400, 120), at(380, 420)]
    points = [(r, c, k) for k, (r, c) in enumerate(landmarks_fixed, 1)]
    for k, (r, c) in enumerate(landmarks_fixed, 1):
        x, y = turn @ (c, r, 1.0)
        points.append((float(y), float(x), -k))
    psf = cv2.getGaussianKernel(9, 1.5) @ cv2.getGaussianKernel(9, 1.5).T
    return {
        "image": image,
        "image2": moved,
        "psf": psf.astype(np.float32),
        "markers": markers,
        "hole": hole.astype(bool),
        "outline": outline.astype(bool),
        "click": [(*at(250, 240), 1)],
        "landmarks": points,
        "rect": (int(130 * scale), int(20 * scale), int(250 * scale), int(480 * scale)),
    }


def import_heavy_libraries() -> None:
    """Import torch and SimpleITK where installed, as in a window that has run such an
    operator once: their import time is then not counted as the operator's."""
    for heavy in ("torch", "SimpleITK"):
        if importlib.util.find_spec(heavy) is not None:
            __import__(heavy)


def measurable(wanted: set[str]) -> tuple[list, list[str]]:
    """The registered operators to measure (all, or those named in ``wanted``) and a line
    for each one left out: it needs a file (:data:`NEEDS_FILE`) or missing packages."""
    chosen, skipped = [], []
    for spec in all_operators():
        if wanted and spec.id not in wanted:
            continue
        if spec.id in NEEDS_FILE:
            skipped.append(f"{spec.id}: {NEEDS_FILE[spec.id]}")
        elif spec.missing_requirements():
            skipped.append(f"{spec.id}: needs {', '.join(spec.missing_requirements())}")
        else:
            chosen.append(spec)
    return chosen, skipped


def inputs_for(spec, made: dict) -> dict:
    """The inputs ``spec`` takes, from ``made`` (:func:`make_inputs`)."""
    chosen = {"image": made["image"]}
    wanted = set(spec.inputs)
    if "image2" in wanted:
        chosen["image2"] = made["psf"] if spec.id == "deblur" else made["image2"]
    if "markers" in wanted and spec.id != "grabcut":
        chosen["markers"] = made["markers"]
    if "mask" in wanted and "mask" in spec.required_inputs:
        chosen["mask"] = made["hole"] if spec.category == "Inpaint" or spec.id == "seamless_clone" else made["outline"]
    if "points" in wanted:
        if spec.id == "register_landmarks":
            chosen["points"] = made["landmarks"]
        elif "markers" not in chosen:
            chosen["points"] = made["click"]
    if "rect" in wanted and spec.id in ("grabcut", "click_select"):
        chosen["rect"] = made["rect"]
    return chosen


def variants(spec, defaults_only: bool) -> list[tuple[str, dict]]:
    """(name, parameters) to measure for ``spec``: its defaults, and each other value of
    its ``method`` choice unless ``defaults_only``."""
    params = {}
    if spec.id == "deblur":
        params = {"psf": "image2"}
    found = [(spec.id, params)]
    if defaults_only:
        return found
    for param in spec.params:
        if param.name == "method" and param.choices:
            found += [(f"{spec.id}:{value}", {**params, "method": value}) for value in param.choices if value != param.default]
    if spec.id in ("superpixels", "merge_superpixels"):
        # The over-segmentation at full size rather than on a 0.5 MP copy.
        found += [(f"{spec.id}:{value}:full", {"method": value, "coarse_megapixels": 0.0}) for value in ("slic", "felzenszwalb")]
    if spec.id == "scribble_cnn":
        # Training and the graph cut on the whole photo rather than on a 0.3 MP copy.
        found.append((f"{spec.id}:full", {"working_megapixels": 3.0}))
    if spec.id == "register_intensity":
        found += [(f"{spec.id}:{value}", {"deformable": value}) for value in ("bspline", "demons")]
    return found


def measure(spec, inputs: dict, params: dict, delay: float | None, cap: float, pipe) -> None:
    """In a child: run once, cancelling after ``delay`` seconds (None: never), and send
    ``(kind, seconds)`` down ``pipe``: ("done", run seconds), ("cancelled"/"returned",
    latency) or ("error", message)."""
    cancel = threading.Event()
    outcome: dict = {}

    def work() -> None:
        try:
            spec.run(inputs, params, RunContext(cancel_event=cancel))
            outcome["kind"] = "returned"
        except Cancelled:
            outcome["kind"] = "cancelled"
        except Exception as error:  # a broken case must not stop the table
            outcome["kind"] = "error"
            outcome["message"] = f"{type(error).__name__}: {error}"[:80]

    start = time.perf_counter()
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    if delay is not None:
        thread.join(delay)
        if thread.is_alive():
            cancel.set()
            asked = time.perf_counter()
            thread.join(cap)
            if thread.is_alive():
                pipe.send(("stuck", cap))
            else:
                pipe.send((outcome["kind"], time.perf_counter() - asked) if outcome["kind"] != "error" else ("error", outcome["message"]))
            pipe.close()
            os._exit(0)  # a stuck thread must not keep the child alive
    thread.join(cap)
    if thread.is_alive():
        pipe.send(("stuck", cap))
    elif outcome["kind"] == "error":
        pipe.send(("error", outcome["message"]))
    else:
        pipe.send(("done", time.perf_counter() - start))
    pipe.close()
    os._exit(0)


def in_child(spec, inputs, params, delay, cap) -> tuple[str, object]:
    """:func:`measure` in a forked child, killed if it outlives ``cap`` plus its delay."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=measure, args=(spec, inputs, params, delay, cap, sender))
    child.start()
    sender.close()
    limit = cap + (delay or 0.0) + 5.0
    answer = ("stuck", cap)
    if receiver.poll(limit):
        try:
            answer = receiver.recv()
        except EOFError:
            answer = ("error", "child died")
    if child.is_alive():
        child.kill()
    child.join()
    return answer


def main(argv=None) -> int:
    args = parse_args(argv)
    delays = [float(d) for d in args.delays.split(",") if d]
    fractions = [float(f) for f in args.fractions.split(",") if f]
    wanted = {name for name in args.operators.split(",") if name}
    import_heavy_libraries()
    made = make_inputs(args.megapixels)
    rows, cols = made["image"].shape[:2]
    print(f"image {cols} x {rows} ({rows * cols / 1e6:.1f} MP), delays {delays} s and {fractions} of each run, cap {args.cap:.0f} s, "
          f"load average {os.getloadavg()[0]:.2f}")
    header = f"{'operator':34} {'uncancelled':>12} {'median':>8} {'max':>8}  verdict"
    print(header)
    print("-" * len(header))
    misses = []
    chosen, skipped = measurable(wanted)
    for spec in chosen:
        inputs = inputs_for(spec, made)
        for name, params in variants(spec, args.defaults_only):
            kind, value = in_child(spec, inputs, params, None, args.cap)
            if kind == "error":
                print(f"{name:34} error: {value}")
                continue
            run = f"> {args.cap:.0f} s" if kind == "stuck" else f"{value:.2f} s"
            run_seconds = args.cap if kind == "stuck" else value
            latencies, stuck = [], False
            for delay in delays + [fraction * run_seconds for fraction in fractions]:
                kind, value = in_child(spec, inputs, params, delay, args.cap)
                if kind in ("cancelled", "returned"):
                    latencies.append(value)
                elif kind == "stuck":
                    stuck = True
            if stuck:
                median = largest = f"> {args.cap:.0f}"
                verdict = "MISS"
            elif latencies:
                median, largest = f"{statistics.median(latencies):.2f}", f"{max(latencies):.2f}"
                verdict = "ok" if max(latencies) < TARGET_S else "MISS"
            else:
                median = largest = "-"
                verdict = "ok (done before cancel)"
            if verdict == "MISS":
                misses.append(name)
            print(f"{name:34} {run:>12} {median:>8} {largest:>8}  {verdict}", flush=True)
    for line in skipped:
        print(f"skipped {line}")
    print(f"{len(misses)} over {TARGET_S:.0f} s: {', '.join(misses) or 'none'}; load average now {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
