"""The scribble-trained CNN on the GrabCut benchmark, beside the random walker and GrabCut,
and how soon its live preview appears on a ~1-megapixel photo on the CPU.

    .venv/bin/python benchmarks/dl_scribble_quality.py [--data DIR] [--limit N]
        [--latency-photos N] [--sections 1,2] [-p NAME=VALUE ...]

Data: the MSRC GrabCut set (default ``../shared/data/grabcut``), loaded as
``segmentation_quality.py`` loads it: ``images/``, ``ground-truth/`` (0 background, 128
unknown band, 255 object) and ``scribbles-set-1/<name>-anno.png`` (palette indices: 0
unlabelled, 1 foreground, 2 background). IoU is of the foreground against the ground
truth's 255 pixels, leaving out the 128 band.

1. Quality at the original size with the same scribbles: maskwork's ``scribble_cnn``
   (defaults, CPU, cache cleared per photo so every photo trains from scratch), the same
   with ``connected=True`` (class regions not connected to their scribbles dropped),
   ``random_walker`` and ``grabcut`` (markers only, no box, 5 iterations). One line per
   photo, then mean IoU and median seconds per photo, over all photos and separately over
   the photos the CNN's defaults were tuned on (:data:`TUNING_PHOTOS`) and the others.
2. Preview latency on the CPU: ``--latency-photos`` photos upscaled to ~1 MP (image
   bicubic, scribbles nearest), after a warm-up run (torch import, first-call costs):
   seconds from the call to the first partial result and to the final full-resolution
   result, for a fresh network and for a second run after one more foreground scribble
   (training continues from the cached weights); medians and every value.

``-p NAME=VALUE`` overrides a ``scribble_cnn`` parameter in both sections. Not a pass/fail
test. If the data folder is missing it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for _path in (REPO, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from segmentation_quality import (  # after the path set-up above
    DEFAULT_DATA,
    FOREGROUND,
    iou,
    list_cases,
    load_case,
    missing_data_message,
    mw_grabcut,
    mw_random_walker,
    timed,
    upscale,
)

#: The photos the CNN's default parameters were chosen on (every sixth of the sorted set).
TUNING_PHOTOS = ("106024", "209070", "326038", "banana1", "ceramic", "grave", "person3", "scissors")
#: Section 2 photos, upscaled to about 1 MP.
LATENCY_PHOTOS = ("banana1", "person7", "flower", "106024", "llama")
LATENCY_MEGAPIXELS = 1.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data folder (default {DEFAULT_DATA})")
    parser.add_argument("--limit", type=int, default=48,
                        help="section 1: number of photos, evenly spaced over the sorted set (default 48 = all)")
    parser.add_argument("--latency-photos", type=int, default=3,
                        help=f"section 2: photos of {', '.join(LATENCY_PHOTOS)} upscaled to ~1 MP (default 3)")
    parser.add_argument("--sections", default="1,2", help="comma-separated subset of 1,2 (default both)")
    parser.add_argument("-p", dest="params", action="append", default=[], metavar="NAME=VALUE",
                        help="scribble_cnn parameter override (repeatable)")
    return parser.parse_args(argv)


def cnn_params(overrides: list[str]) -> dict:
    params = {"device": "cpu"}
    for item in overrides:
        name, _, value = item.partition("=")
        params[name.strip()] = value.strip()
    return params


def evenly_spaced(items: list, count: int) -> list:
    if count >= len(items):
        return list(items)
    return [items[int(i * len(items) / count)] for i in range(max(0, count))]


def mw_scribble_cnn(params: dict):
    def run(rgb, seeds):
        from maskwork.operators import get
        from maskwork.operators.dl.scribble_cnn import clear_cache

        clear_cache()  # every photo trains from new weights
        return get("scribble_cnn").run({"image": rgb, "markers": seeds}, params)["labels"] == FOREGROUND

    return run


# -- 1. quality ---------------------------------------------------------------------------
def section_quality(data: Path, limit: int, params: dict) -> None:
    cases = list_cases(data)
    chosen = evenly_spaced(cases, limit)
    methods = (
        ("scribble_cnn", mw_scribble_cnn(params)),
        ("scribble_cnn connected", mw_scribble_cnn(params | {"connected": True})),
        ("random_walker", mw_random_walker),
        ("grabcut (markers, no box)", mw_grabcut),
    )
    print(f"\n1. Scribbles-set-1 at the original size, {len(chosen)} of {len(cases)} photos; CPU; "
          f"scribble_cnn parameters: {params}", flush=True)
    print("   per photo: IoU / seconds for " + ", ".join(label for label, _ in methods), flush=True)
    # First-call costs (the torch import, OpenCV's and torch's kernels) stay out of the timings.
    rgb, _, seeds = load_case(*chosen[0][1:])
    small = (rgb.shape[1] // 3, rgb.shape[0] // 3)
    for _, method in methods:
        timed(method, cv2.resize(rgb, small, interpolation=cv2.INTER_AREA),
              cv2.resize(seeds, small, interpolation=cv2.INTER_NEAREST))
    scores = {label: {} for label, _ in methods}
    for name, *paths in chosen:
        rgb, truth, seeds = load_case(*paths)
        cells = []
        for label, method in methods:
            mask, seconds, error, _ = timed(method, rgb, seeds)
            value = iou(mask, truth) if mask is not None else 0.0
            scores[label][name] = (value, seconds)
            cells.append(f"{value:.3f}/{seconds:5.2f}s" + (f" ({error})" if error else ""))
        print(f"   {name:<10} {rgb.shape[1]:>3}x{rgb.shape[0]:<3} " + "  ".join(cells), flush=True)

    tuning = [name for name, *_ in chosen if name in TUNING_PHOTOS]
    held_out = [name for name, *_ in chosen if name not in TUNING_PHOTOS]
    groups = [("all", [name for name, *_ in chosen]), ("tuning", tuning), ("held out", held_out)]
    header = f"{'method':<26}" + "".join(f" {f'IoU {g}':>14} {'s/img':>6}" for g, names in groups if names)
    print()
    print(header)
    print("-" * len(header))
    for label, _ in methods:
        line = f"{label:<26}"
        for _, names in groups:
            if names:
                values = [scores[label][name] for name in names]
                mean_iou, median_seconds = statistics.fmean(v for v, _ in values), statistics.median(s for _, s in values)
                line += f" {mean_iou:>14.3f} {median_seconds:>6.2f}"
        print(line)
    print(f"(IoU = mean over photos, ignoring the 128 band; s/img = median seconds; tuning = the {len(tuning)} photos "
          f"the CNN's defaults were chosen on, held out = the {len(held_out)} others)")
    cnn = scores["scribble_cnn"]
    for other in ("random_walker", "grabcut (markers, no box)"):
        wins = sum(cnn[n][0] > scores[other][n][0] + 0.01 for n in cnn)
        losses = sum(cnn[n][0] < scores[other][n][0] - 0.01 for n in cnn)
        print(f"scribble_cnn vs {other}: better on {wins}, worse on {losses} photos (by more than 0.01 IoU)")


# -- 2. preview latency -------------------------------------------------------------------
def extra_scribble(truth: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The scribbles plus a short foreground stroke at the object's deepest point."""
    inside = cv2.distanceTransform((truth == 255).astype(np.uint8), cv2.DIST_L2, 5)
    row, col = np.unravel_index(np.argmax(inside), inside.shape)
    half = max(3, int(inside[row, col] // 2))
    more = seeds.copy()
    more[max(0, row - 2) : row + 3, max(0, col - half) : col + half] = FOREGROUND
    return more


def latency_run(rgb, seeds, params: dict) -> tuple[float, float, float]:
    """(seconds to the first partial result, seconds to the result, IoU-ready labels)."""
    from maskwork.operators import RunContext, get

    first = []
    started = time.perf_counter()
    ctx = RunContext(on_partial=lambda _: first.append(time.perf_counter() - started) if not first else None)
    result = get("scribble_cnn").run({"image": rgb, "markers": seeds}, params, ctx)
    total = time.perf_counter() - started
    return (first[0] if first else float("nan")), total, result


def section_latency(data: Path, photos: int, params: dict) -> None:
    from maskwork.operators.dl.scribble_cnn import clear_cache

    cases = {case[0]: case for case in list_cases(data)}
    names = [name for name in LATENCY_PHOTOS if name in cases][: max(0, photos)]
    print(f"\n2. Preview latency on the CPU ({os.cpu_count()} cores), photos upscaled to ~{LATENCY_MEGAPIXELS:g} MP, "
          f"scribble_cnn parameters: {params}", flush=True)
    warm_rgb, _, warm_seeds = load_case(*cases[names[0]][1:])
    latency_run(warm_rgb, warm_seeds, params)  # torch import and first-call costs
    header = (f"{'photo':<10} {'size':>10} {'first preview':>13} {'final':>7} {'IoU':>6}   "
              f"{'resumed: first':>14} {'final':>7} {'IoU':>6}")
    print(header)
    print("-" * len(header))
    rows = []
    for name in names:
        rgb, truth, seeds = upscale(*load_case(*cases[name][1:]), megapixels=LATENCY_MEGAPIXELS)
        clear_cache()
        first, total, result = latency_run(rgb, seeds, params)
        more = extra_scribble(truth, seeds)
        again_first, again_total, again = latency_run(rgb, more, params)
        row = (first, total, iou(result["labels"] == FOREGROUND, truth),
               again_first, again_total, iou(again["labels"] == FOREGROUND, truth))
        rows.append(row)
        print(f"{name:<10} {rgb.shape[1]:>4}x{rgb.shape[0]:<5} {row[0]:>12.2f}s {row[1]:>6.2f}s {row[2]:>6.3f}   "
              f"{row[3]:>13.2f}s {row[4]:>6.2f}s {row[5]:>6.3f}", flush=True)
    if rows:
        med = [statistics.median(r[i] for r in rows) for i in range(6)]
        print("-" * len(header))
        print(f"{'median':<10} {'':>10} {med[0]:>12.2f}s {med[1]:>6.2f}s {med[2]:>6.3f}   "
              f"{med[3]:>13.2f}s {med[4]:>6.2f}s {med[5]:>6.3f}")
    print("(first preview = from the call to the first partial result; final = to the full-resolution result; "
          "resumed = a second run after one more foreground stroke, training on from the cached network)")
    clear_cache()


def main(argv=None) -> int:
    args = parse_args(argv)
    data = args.data
    missing = missing_data_message(data)
    if missing:
        print(missing)
        return 0
    import torch

    params = cnn_params(args.params)
    sections = {int(s) for s in args.sections.split(",") if s.strip()}
    print(f"maskwork scribble CNN benchmark; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads)", flush=True)
    started = time.perf_counter()
    if 1 in sections:
        section_quality(data, args.limit, params)
    if 2 in sections:
        section_latency(data, args.latency_photos, params)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average (1 min) at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
