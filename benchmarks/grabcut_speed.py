"""GrabCut on ~12-megapixel photos: maskwork's operator against the plain OpenCV call.

For each photo of the MSRC GrabCut data set (images/, ground-truth/, bboxes_from_gt.csv)
the photo is upscaled with bicubic interpolation to about 12 megapixels (the ground truth
with nearest neighbour, the box scaled with it), then, in the same process:

(a) maskwork: ``get("grabcut").run({"image": rgb, "rect": box}, {"iterations": 5})``
    with its other parameters at their defaults (crop around the box, coarse-to-fine);
(b) plain:    ``cv2.grabCut(bgr, mask, box, bgd, fgd, 5, cv2.GC_INIT_WITH_RECT)``
    on the full image.

Both are scored by IoU against the ground truth, ignoring its 128 (unknown) band. The box
is the ground truth's tight box padded by 10 px (the ``pad10_*`` columns, inclusive).
Prints one row per image, the medians and a summary line. Not a pass/fail test.

    python benchmarks/grabcut_speed.py [--data DIR] [--limit N] [--megapixels MP]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "grabcut"
ITERATIONS = 5


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data folder (default {DEFAULT_DATA})")
    parser.add_argument("--limit", type=int, default=5, help="number of photos, in the CSV's order (default 5: the plain call takes 2-4 min per 12 MP photo on 2 cores)")
    parser.add_argument("--megapixels", type=float, default=12.0, help="upscale each photo to about this size (default 12)")
    return parser.parse_args(argv)


def read_rgb(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise OSError(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """IoU of ``mask`` with the ground truth's 255 pixels, leaving out its 128 band."""
    valid = truth != 128
    object_ = truth == 255
    union = np.count_nonzero((mask | object_) & valid)
    return float(np.count_nonzero(mask & object_ & valid) / union) if union else 1.0


def load_rows(data: Path) -> list[dict]:
    with open(data / "bboxes_from_gt.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row for row in rows if (data / "images" / row["image"]).exists()]


def upscale(rgb, truth, box, megapixels: float):
    """Image (bicubic), ground truth (nearest) and (x, y, w, h) box at about ``megapixels``."""
    rows, cols = rgb.shape[:2]
    scale = np.sqrt(megapixels * 1e6 / (rows * cols))
    size = (round(cols * scale), round(rows * scale))
    big = cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC)
    big_truth = cv2.resize(truth, size, interpolation=cv2.INTER_NEAREST)
    x0, y0, x1, y1 = box  # inclusive pixel corners
    sx, sy = size[0] / cols, size[1] / rows
    left, top = int(round(x0 * sx)), int(round(y0 * sy))
    right, bottom = min(size[0], int(round((x1 + 1) * sx))), min(size[1], int(round((y1 + 1) * sy)))
    return big, big_truth, (left, top, right - left, bottom - top)


def run_plain(rgb: np.ndarray, rect) -> tuple[np.ndarray, float]:
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    mask = np.zeros(rgb.shape[:2], np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # maskwork seeds the same way: both start k-means alike
    start = time.perf_counter()
    cv2.grabCut(bgr, mask, rect, bgd, fgd, ITERATIONS, cv2.GC_INIT_WITH_RECT)
    seconds = time.perf_counter() - start
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD), seconds


def run_maskwork(spec, rgb: np.ndarray, rect):
    start = time.perf_counter()
    result = spec.run({"image": rgb, "rect": rect}, {"iterations": ITERATIONS})
    seconds = time.perf_counter() - start
    return result["mask"], seconds, result.scores.get("working_scale", 1.0)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = args.data
    if not (data / "bboxes_from_gt.csv").is_file() or not (data / "images").is_dir():
        print(f"GrabCut data not found in {data} (needs images/, ground-truth/, bboxes_from_gt.csv);"
              " pass --data DIR. Nothing to benchmark.")
        return 0
    sys.path.insert(0, str(REPO))
    from maskwork.operators import get

    spec = get("grabcut")
    defaults = ", ".join(f"{name}={value}" for name, value in spec.defaults().items() if name != "iterations")
    rows = load_rows(data)[: max(0, args.limit)]
    print(f"GrabCut, {len(rows)} photos of {data} upscaled to ~{args.megapixels:g} MP, box = ground truth + 10 px, "
          f"{ITERATIONS} iterations; OpenCV {cv2.__version__}, {cv2.getNumThreads()} threads")
    print(f"maskwork grabcut with its defaults: {defaults}")
    header = f"{'image':<12} {'size':>11} {'maskwork s':>10} {'plain s':>8} {'speedup':>8} {'IoU mw':>7} {'IoU cv2':>7} {'dIoU':>7} {'scale':>6}"
    print(header)
    print("-" * len(header))
    records = []
    for row in rows:
        rgb = read_rgb(data / "images" / row["image"])
        truth = cv2.imread(str(data / "ground-truth" / f"{row['name']}.png"), cv2.IMREAD_GRAYSCALE)
        if truth is None or truth.shape != rgb.shape[:2]:
            print(f"{row['name']:<12} skipped: ground truth missing or of another size")
            continue
        box = tuple(int(row[f"pad10_{k}"]) for k in ("x0", "y0", "x1", "y1"))
        big, big_truth, rect = upscale(rgb, truth, box, args.megapixels)
        mw_mask, mw_seconds, scale = run_maskwork(spec, big, rect)
        cv_mask, cv_seconds = run_plain(big, rect)
        record = {
            "mw": mw_seconds,
            "cv": cv_seconds,
            "speedup": cv_seconds / mw_seconds,
            "iou_mw": iou(mw_mask, big_truth),
            "iou_cv": iou(cv_mask, big_truth),
        }
        record["diou"] = record["iou_mw"] - record["iou_cv"]
        records.append(record)
        size = f"{big.shape[1]}x{big.shape[0]}"
        print(f"{row['name']:<12} {size:>11} {mw_seconds:>10.2f} {cv_seconds:>8.2f} {record['speedup']:>7.1f}x "
              f"{record['iou_mw']:>7.3f} {record['iou_cv']:>7.3f} {record['diou']:>+7.3f} {scale:>6.3f}", flush=True)
    if not records:
        print("no photo could be scored")
        return 0

    def median(key):
        return statistics.median(r[key] for r in records)

    print("-" * len(header))
    print(f"{'median':<12} {'':>11} {median('mw'):>10.2f} {median('cv'):>8.2f} {median('speedup'):>7.1f}x "
          f"{median('iou_mw'):>7.3f} {median('iou_cv'):>7.3f} {median('diou'):>+7.3f}")
    mean_diou = statistics.fmean(r["diou"] for r in records)
    print(f"summary: {len(records)} photos, median speedup {median('speedup'):.1f}x (plain seconds / maskwork seconds), "
          f"mean IoU difference maskwork - plain {mean_diou:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
