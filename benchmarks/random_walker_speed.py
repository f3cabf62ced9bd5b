"""Random walker on ~2-megapixel photos: maskwork's operator against scikit-image's.

For each photo of the MSRC GrabCut data set (images/, ground-truth/, scribbles-set-1/) the
photo is upscaled with bicubic interpolation to about 2 megapixels (the ground truth and the
scribbles with nearest neighbour), then, in the same process and on the same uint8 RGB
image with the same scribbles (palette index 1 = foreground, 2 = background) and beta:

(a) maskwork: ``get("random_walker").run({"image": rgb, "markers": scribbles})`` with its
    defaults (coarse solve, then full resolution in a band around the boundary);
(b) maskwork with ``refine="full"`` (the whole image solved at full resolution);
(c) plain:    ``skimage.segmentation.random_walker(rgb, scribbles, beta=130,
    channel_axis=-1)``, its default mode ("cg_j": conjugate gradients with a Jacobi
    preconditioner, tol 1e-3);
(d) scikit-image with ``mode="cg_mg"`` (its multigrid mode, through pyamg), which solves
    the same equations to convergence: the reference for what the exact random walker
    scores. At 2 MP the default "cg_j" stops far from the solution (its probabilities do
    not sum to one), so its IoU differs from the exact one, in either direction.

All are scored by IoU of class 1 against the ground truth, ignoring its 128 (unknown)
band. Without the data folder a composite is used instead: the cat of scikit-image's
``chelsea()`` in an ellipse on its ``grass()`` texture, at 2 megapixels, with synthetic
scribbles and an exactly known truth. Prints one row per image, the medians and a summary
line. Not a pass/fail test.

    python benchmarks/random_walker_speed.py [--data DIR] [--limit N] [--megapixels MP]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "grabcut"
BETA = 130.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data folder (default {DEFAULT_DATA})")
    parser.add_argument("--limit", type=int, default=5, help="number of photos (default 5)")
    parser.add_argument("--megapixels", type=float, default=2.0, help="upscale each photo to about this size (default 2)")
    return parser.parse_args(argv)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """IoU of ``mask`` with the ground truth's 255 pixels, leaving out its 128 band."""
    valid = truth != 128
    object_ = truth == 255
    union = np.count_nonzero((mask | object_) & valid)
    return float(np.count_nonzero(mask & object_ & valid) / union) if union else 1.0


def photo_cases(data: Path, limit: int, megapixels: float):
    """(name, rgb, truth 0/128/255, scribbles) of the data set, upscaled; lazily."""
    from maskwork.core.io import read_image

    names = []
    csv_path = data / "bboxes_from_gt.csv"
    if csv_path.is_file():
        with open(csv_path, newline="") as handle:
            names = [(row["name"], row["image"]) for row in csv.DictReader(handle)]
    else:
        names = [(path.stem, path.name) for path in sorted((data / "images").iterdir())]
    count = 0
    for name, image_name in names:
        if count >= limit:
            break
        paths = (data / "images" / image_name, data / "ground-truth" / f"{name}.png",
                 data / "scribbles-set-1" / f"{name}-anno.png")
        if not all(path.is_file() for path in paths):
            continue
        rgb, truth, scribbles = (read_image(path) for path in paths)
        if rgb.ndim == 2:
            rgb = np.repeat(rgb[..., None], 3, axis=2)
        rgb = np.ascontiguousarray(rgb[..., :3])
        if truth.ndim == 3:
            truth = truth[..., 0]
        if truth.shape != rgb.shape[:2] or scribbles.shape != rgb.shape[:2]:
            print(f"{name:<12} skipped: ground truth or scribbles of another size")
            continue
        if not {1, 2} <= set(np.unique(scribbles).tolist()):
            print(f"{name:<12} skipped: scribbles lack a class")
            continue
        rows, cols = rgb.shape[:2]
        scale = np.sqrt(megapixels * 1e6 / (rows * cols))
        size = (round(cols * scale), round(rows * scale))
        count += 1
        yield (
            name,
            cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC),
            cv2.resize(truth, size, interpolation=cv2.INTER_NEAREST),
            cv2.resize(scribbles.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST),
        )


def composite_case(megapixels: float):
    """The cat-in-an-ellipse-on-grass composite with scribbles, about ``megapixels`` big."""
    from skimage import data
    from skimage.draw import ellipse

    rows = int(round(np.sqrt(megapixels * 1e6 * 3 / 4)))
    cols = int(round(rows * 4 / 3))
    grass = cv2.resize(data.grass(), (cols, rows), interpolation=cv2.INTER_CUBIC).astype(np.float32) / 255
    tint = np.array([0.45, 0.75, 0.30], np.float32)
    rgb = np.round(255 * (0.15 + 0.75 * grass[..., None] * tint)).astype(np.uint8)
    cat = cv2.resize(data.chelsea()[20:280, 60:400], (cols, rows), interpolation=cv2.INTER_CUBIC)
    inside = np.zeros((rows, cols), bool)
    rr, cc = ellipse(0.5 * rows, 0.5 * cols, 0.33 * rows, 0.30 * cols, shape=inside.shape, rotation=0.4)
    inside[rr, cc] = True
    rgb[inside] = cat[inside]
    truth = np.where(inside, 255, 0).astype(np.uint8)
    scribbles = np.zeros((rows, cols), np.uint8)
    width = max(3, rows // 150)
    r0, c0 = rows // 2, cols // 2
    scribbles[r0 - width : r0 + width, c0 - cols // 6 : c0 + cols // 6] = 1
    scribbles[r0 - rows // 6 : r0 + rows // 6, c0 - width : c0 + width] = 1
    margin = rows // 30
    frame = np.zeros((rows, cols), bool)
    frame[margin : margin + width, margin:-margin] = True
    frame[-margin - width : -margin, margin:-margin] = True
    frame[margin:-margin, margin : margin + width] = True
    frame[margin:-margin, -margin - width : -margin] = True
    scribbles[frame & ~inside] = 2
    yield "composite", rgb, truth, scribbles


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import skimage
    from skimage.segmentation import random_walker as skimage_random_walker

    from maskwork.operators import get

    spec = get("random_walker")
    defaults = ", ".join(f"{name}={value}" for name, value in spec.defaults().items())
    have_data = (args.data / "images").is_dir() and (args.data / "ground-truth").is_dir() and (
        args.data / "scribbles-set-1"
    ).is_dir()
    if have_data:
        cases = photo_cases(args.data, max(0, args.limit), args.megapixels)
        source = f"the first {args.limit} usable photos of {args.data}"
    else:
        print(f"GrabCut data not found in {args.data} (needs images/, ground-truth/, scribbles-set-1/): "
              "using a scikit-image composite instead.")
        cases = composite_case(args.megapixels)
        source = "a scikit-image composite"
    print(f"Random walker on {source}, upscaled to ~{args.megapixels:g} MP, beta={BETA:g}; "
          f"scikit-image {skimage.__version__} random_walker in its default mode, channel_axis=-1")
    print(f"maskwork random_walker with its defaults: {defaults}; 'full' = the same with refine=full; "
          "speedup = scikit-image default seconds / maskwork seconds; dIoU = IoU mw - IoU sk")

    # Warm up both (imports, first-call overheads) on a small image before timing.
    tiny = np.zeros((32, 32, 3), np.uint8)
    tiny[:, 16:] = 200
    tiny_markers = np.zeros((32, 32), np.uint8)
    tiny_markers[2:4, 2:4], tiny_markers[-4:-2, -4:-2] = 1, 2
    spec.run({"image": tiny, "markers": tiny_markers})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        skimage_random_walker(tiny, tiny_markers, beta=BETA, channel_axis=-1)
        skimage_random_walker(tiny, tiny_markers, beta=BETA, channel_axis=-1, mode="cg_mg")

    header = (f"{'image':<12} {'size':>10} {'maskwork s':>10} {'full s':>7} {'skimage s':>9} {'speedup':>8} "
              f"{'sp. full':>8} {'IoU mw':>7} {'IoU full':>8} {'IoU sk':>7} {'dIoU':>7} {'cg_mg s':>8} {'IoU mg':>7}")
    print(header)
    print("-" * len(header))
    records = []
    for name, rgb, truth, scribbles in cases:
        mw, mw_seconds = timed(spec.run, {"image": rgb, "markers": scribbles}, {"beta": BETA})
        full, full_seconds = timed(spec.run, {"image": rgb, "markers": scribbles}, {"beta": BETA, "refine": "full"})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its "probability range outside [0, 1]" warnings
            sk_labels, sk_seconds = timed(skimage_random_walker, rgb, scribbles, beta=BETA, channel_axis=-1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mg_labels, mg_seconds = timed(skimage_random_walker, rgb, scribbles, beta=BETA, channel_axis=-1, mode="cg_mg")
        record = {
            "mw": mw_seconds,
            "full": full_seconds,
            "sk": sk_seconds,
            "speedup": sk_seconds / mw_seconds,
            "speedup_full": sk_seconds / full_seconds,
            "iou_mw": iou(mw["labels"] == 1, truth),
            "iou_full": iou(full["labels"] == 1, truth),
            "iou_sk": iou(sk_labels == 1, truth),
            "mg": mg_seconds,
            "iou_mg": iou(mg_labels == 1, truth),
        }
        record["diou"] = record["iou_mw"] - record["iou_sk"]
        records.append(record)
        size = f"{rgb.shape[1]}x{rgb.shape[0]}"
        print(f"{name:<12} {size:>10} {mw_seconds:>10.2f} {full_seconds:>7.2f} {sk_seconds:>9.2f} "
              f"{record['speedup']:>7.1f}x {record['speedup_full']:>7.1f}x {record['iou_mw']:>7.3f} "
              f"{record['iou_full']:>8.3f} {record['iou_sk']:>7.3f} {record['diou']:>+7.3f} {mg_seconds:>8.2f} "
              f"{record['iou_mg']:>7.3f}", flush=True)
    if not records:
        print("no photo could be scored")
        return 0

    def median(key):
        return statistics.median(r[key] for r in records)

    print("-" * len(header))
    print(f"{'median':<12} {'':>10} {median('mw'):>10.2f} {median('full'):>7.2f} {median('sk'):>9.2f} "
          f"{median('speedup'):>7.1f}x {median('speedup_full'):>7.1f}x {median('iou_mw'):>7.3f} "
          f"{median('iou_full'):>8.3f} {median('iou_sk'):>7.3f} {median('diou'):>+7.3f} {median('mg'):>8.2f} "
          f"{median('iou_mg'):>7.3f}")
    mean_diou = statistics.fmean(r["diou"] for r in records)
    worst = min(r["diou"] for r in records)
    mean_dmg = statistics.fmean(r["iou_mw"] - r["iou_mg"] for r in records)
    print(f"summary: {len(records)} images, median speedup {median('speedup'):.1f}x (refine=full "
          f"{median('speedup_full'):.1f}x; scikit-image default seconds / maskwork seconds); IoU maskwork - "
          f"scikit-image default: mean {mean_diou:+.4f}, worst {worst:+.4f}; maskwork - scikit-image cg_mg "
          f"(converged): mean {mean_dmg:+.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
