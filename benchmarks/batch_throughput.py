"""``maskwork batch`` throughput: a recipe on 50 photos with 1 and 2 Dask workers.

The photos are the 48 of the MSRC GrabCut set (``grabcut/images/``: JPEG and BMP) plus the
first two photos of ``inpainting/ldm_inpainting_examples`` (masks left out), under ``--data``
(default ``../shared/data`` beside the repository). The recipe is what a person would
record to cut out the main object of any photo:

1. ``grabcut`` with a whole-image box (5 % margin on each side), 5 iterations;
2. ``morphology`` opening with radius 3.

In the same run, on the same photos:

(a) sequential: a plain loop in this process that reads each photo, calls the two
    operators through the registry and writes both masks (no Dask, no sidecars);
(b) ``maskwork batch`` with a local cluster of 1, then 2 worker processes (one thread
    each): ``maskwork.pipeline.batch.dask_client`` + ``run_on_client``, which also writes sidecars
    with the recipe and a done-marker per image.

Columns: cluster start-up seconds (processes started and operators imported on every
worker, excluded from the run), run seconds, images per second, the speed-up against the
sequential loop, the median seconds per image, and images per second end to end (start-up
included, as a user of ``maskwork batch`` sees it). The last line checks that every batch
wrote the same masks as the sequential loop. Not a pass/fail test.

    .venv/bin/python benchmarks/batch_throughput.py [--data DIR] [--limit N] [--workers 1,2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from maskwork.core import io
from maskwork.operators import get
from maskwork.pipeline.batch import dask_client, run_on_client
from maskwork.pipeline.inputs import LayerInput, WholeImageInput, whole_image_box
from maskwork.pipeline.recipe import Recipe

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data"
MARGIN, ITERATIONS, RADIUS = 0.05, 5, 3


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data folder (default {DEFAULT_DATA})")
    parser.add_argument("--limit", type=int, default=50, help="number of photos (default 50)")
    parser.add_argument("--workers", default="1,2", help="worker counts to compare, comma-separated (default 1,2)")
    return parser.parse_args(argv)


def find_photos(data: Path, limit: int) -> list[Path]:
    """The GrabCut photos, then inpainting photos (not their masks), ``limit`` in all."""
    folder = data / "grabcut" / "images"
    photos = sorted(p for p in folder.glob("*") if p.suffix.lower() in io.READABLE_SUFFIXES)
    extra = sorted(p for p in (data / "inpainting" / "ldm_inpainting_examples").glob("*.png") if not p.stem.endswith("_mask"))
    return (photos + extra[:2])[:limit]


def cutout_recipe() -> Recipe:
    recipe = Recipe()
    recipe.add_step("grabcut", {"iterations": ITERATIONS}, {"image": LayerInput(), "rect": WholeImageInput(MARGIN)}, {"mask": "cut"})
    recipe.add_step("morphology", {"operation": "open", "radius": RADIUS}, {"mask": LayerInput("cut")}, {"mask": "clean"})
    return recipe


def run_sequential(photos: list[Path], outdir: Path) -> tuple[float, list[float]]:
    """The plain loop: seconds in all and per photo."""
    grabcut, morphology = get("grabcut"), get("morphology")
    per_photo = []
    start = time.perf_counter()
    for path in photos:
        began = time.perf_counter()
        image = io.read_image(path)
        cut = grabcut.run({"image": image, "rect": whole_image_box(image.shape, MARGIN)}, {"iterations": ITERATIONS})["mask"]
        clean = morphology.run({"mask": cut}, {"operation": "open", "radius": RADIUS})["mask"]
        io.write_mask(outdir / f"{path.stem}_cut.png", cut)
        io.write_mask(outdir / f"{path.stem}_clean.png", clean)
        per_photo.append(time.perf_counter() - began)
    return time.perf_counter() - start, per_photo


def _import_operators() -> int:
    """Run on every worker before timing: the first task should not pay for imports."""
    from maskwork.operators import all_operators

    return len(all_operators())


def same_masks(photos: list[Path], reference: Path, outdir: Path) -> int:
    """How many photos got the same two masks in ``outdir`` as in ``reference``."""
    same = 0
    for path in photos:
        names = (f"{path.stem}_cut.png", f"{path.stem}_clean.png")
        same += all((outdir / n).exists() and np.array_equal(io.read_image(reference / n), io.read_image(outdir / n)) for n in names)
    return same


def main(argv=None) -> int:
    args = parse_args(argv)
    photos = find_photos(args.data, args.limit)
    if not photos:
        print(f"No photos found under {args.data} (needs grabcut/images/): skipping the batch benchmark.")
        return 0
    worker_counts = [int(n) for n in args.workers.split(",")]
    grabcut_count = sum(p.parent.name == "images" for p in photos)
    print(f"maskwork batch on {len(photos)} photos ({grabcut_count} GrabCut set, {len(photos) - grabcut_count} inpainting set), "
          f"recipe: grabcut (whole-image box, margin {MARGIN}, {ITERATIONS} iterations) -> morphology open r={RADIUS}")
    print(f"{os.cpu_count()} CPUs, load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")

    with tempfile.TemporaryDirectory(prefix="maskwork-batch-bench-") as scratch:
        scratch = Path(scratch)
        sequential_dir = scratch / "sequential"
        run_sequential(photos[:1], scratch / "warm-up")  # imports and first-call costs stay out
        sequential_seconds, per_photo = run_sequential(photos, sequential_dir)
        rows = [("sequential (no Dask)", "-", None, sequential_seconds, statistics.median(per_photo), None)]
        identical = {}
        for count in worker_counts:
            started = time.perf_counter()
            with dask_client(workers=count) as client:
                client.run(_import_operators)
                startup = time.perf_counter() - started
                outdir = scratch / f"workers-{count}"
                began = time.perf_counter()
                records = run_on_client(client, cutout_recipe(), photos, outdir)
                seconds = time.perf_counter() - began
            failed = [r for r in records if r.status != "ok"]
            if failed:
                print(f"{len(failed)} photo(s) failed with {count} worker(s), e.g. {failed[0].input}: {failed[0].error}")
            rows.append(("maskwork batch", str(count), startup, seconds, statistics.median(r.seconds for r in records), startup + seconds))
            identical[count] = same_masks(photos, sequential_dir, outdir)

    header = f"{'run':<22}{'workers':>8}{'start s':>9}{'run s':>8}{'images/s':>10}{'vs seq':>8}{'median s/img':>14}{'end-to-end img/s':>18}"
    print(header)
    print("-" * len(header))
    for name, workers, startup, seconds, median, total in rows:
        rate = len(photos) / seconds
        print(
            f"{name:<22}{workers:>8}{'-' if startup is None else f'{startup:.1f}':>9}{seconds:>8.1f}{rate:>10.2f}"
            f"{sequential_seconds / seconds:>7.2f}x{median:>14.3f}{'-' if total is None else f'{len(photos) / total:.2f}':>18}"
        )
    print("same masks as the sequential loop: " + ", ".join(f"{n} worker(s) {identical[n]}/{len(photos)}" for n in worker_counts))
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
