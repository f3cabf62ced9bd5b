"""Seeded segmentation on the GrabCut benchmark: maskwork's operators against the plain
library calls with the same scribbles, the random walker's speed on 2 megapixels, and the
time from the end of a scribble to the preview on screen.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/segmentation_quality.py
        [--data DIR] [--limit N] [--sections 1,2,3] [--rw-photos N] [--trials N]

Data: the MSRC GrabCut set (default ``../shared/data/grabcut`` beside the repository):
``images/``, ``ground-truth/`` (0 background, 128 unknown band, 255 object) and
``scribbles-set-1/<name>-anno.png`` (palette PNGs read with ``maskwork.core.io.read_image``,
which returns the palette indices: 0 unlabelled, 1 foreground, 2 background). Every IoU is
of the foreground against the ground truth's 255 pixels, leaving out its 128 band.

1. Quality and speed at the original size (284 x 398 to 640 x 480), the same scribbles for
   every operator, each beside the plain library call:

   - ``grabcut`` (markers only, no box, defaults) vs ``cv2.grabCut(..., GC_INIT_WITH_MASK)``
     for 5 iterations, unknown pixels ``GC_PR_BGD``, scribbles ``GC_FGD`` / ``GC_BGD``;
   - ``random_walker`` (labels == 1) vs ``skimage.segmentation.random_walker(rgb, markers,
     channel_axis=-1)`` (default mode "cg_j", beta 130, tol 1e-3);
   - ``watershed`` with method opencv / skimage / simpleitk (labels == 1; defaults: Sobel
     gradient of the colour image, Gaussian sigma 1) vs ``cv2.watershed`` on the BGR image,
     ``skimage.segmentation.watershed(sobel(rgb2gray(rgb)), markers)`` and SimpleITK's
     ``MorphologicalWatershedFromMarkers(GradientMagnitude(gray), markers)``;
   - ``merge_superpixels`` (defaults), which has no single library equivalent.

   Prints one line per image, then the table: mean IoU, median seconds per image, the
   same for the plain call, the ratio of the median seconds (plain / maskwork) and on
   how many images each side is better by more than 0.01 IoU.
2. Random walker speed on ~2-megapixel colour photos (benchmark photos upscaled, bicubic;
   ground truth and scribbles nearest): maskwork's default against scikit-image's default
   mode, seconds, ratio and IoU of both (issue 4 target: >= 5x, IoU no worse).
3. The real main window (offscreen or Xvfb) with a ~2 MP photo and its scribbles as the
   markers layer, auto-preview on, random walker and then GrabCut chosen: a foreground
   scribble is drawn with mouse events on the canvas viewport (brush tool); the time from
   the button release to the first preview data and the viewport repainted, and to the
   final (full-resolution) preview painted; median of ``--trials``, with no preview showing
   and over a preview (target < 300 ms for the first preview).

Not a pass/fail test. If the data folder is missing it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent
for _path in (REPO, HERE):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

DEFAULT_DATA = REPO.parent / "shared" / "data" / "grabcut"
#: Section 1 images by default. All 48 take about 10 minutes on 2 idle cores (15 measured with
#: another job running): scikit-image's random walker alone needs ~10 s per image, and
#: sections 2 and 3 add about 4 minutes.
DEFAULT_LIMIT = 16
#: Photos of section 2/3 (the first --rw-photos of them), upscaled to ~2 MP.
RW_PHOTOS = ("banana1", "person7", "flower", "106024", "llama")
DEFAULT_RW_PHOTOS = 2
MEGAPIXELS = 2.0
GRABCUT_ITERATIONS = 5
FOREGROUND, BACKGROUND = 1, 2


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data folder (default {DEFAULT_DATA})")
    parser.add_argument(
        "--limit", type=int, default=DEFAULT_LIMIT,
        help=f"section 1: number of images, evenly spaced over the sorted set (default {DEFAULT_LIMIT}; 48 = all)",
    )
    parser.add_argument("--sections", default="1,2,3", help="comma-separated subset of 1,2,3 (default all)")
    parser.add_argument("--rw-photos", type=int, default=DEFAULT_RW_PHOTOS,
                        help=f"section 2: photos upscaled to ~2 MP (default {DEFAULT_RW_PHOTOS}; "
                             "scikit-image needs ~1-2 min for each)")
    parser.add_argument("--trials", type=int, default=3, help="section 3: scribbles per case (default 3)")
    return parser.parse_args(argv)


# -- data -------------------------------------------------------------------------------
def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    """IoU of ``mask`` with the ground truth's 255 pixels, leaving out its 128 band."""
    valid = truth != 128
    object_ = truth == 255
    union = np.count_nonzero((mask | object_) & valid)
    return float(np.count_nonzero(mask & object_ & valid) / union) if union else 1.0


def missing_data_message(data: Path) -> str | None:
    """Why ``data`` cannot be benchmarked (folders missing, no complete case), or None."""
    if not all((data / sub).is_dir() for sub in ("images", "ground-truth", "scribbles-set-1")):
        return (f"GrabCut data not found in {data} (needs images/, ground-truth/, scribbles-set-1/); pass --data DIR. "
                "Nothing to benchmark.")
    if not list_cases(data):
        return f"no image in {data / 'images'} has both a ground truth and scribbles; nothing to benchmark."
    return None


def list_cases(data: Path) -> list[tuple[str, Path, Path, Path]]:
    """(name, image, ground truth, scribbles) for every image that has all three."""
    cases = []
    for image in sorted((data / "images").iterdir(), key=lambda p: p.name.lower()):
        truth = data / "ground-truth" / f"{image.stem}.png"
        scribbles = data / "scribbles-set-1" / f"{image.stem}-anno.png"
        if truth.is_file() and scribbles.is_file():
            cases.append((image.stem, image, truth, scribbles))
    return cases


def evenly_spaced(items: list, count: int) -> list:
    if count >= len(items):
        return list(items)
    return [items[int(i * len(items) / count)] for i in range(max(0, count))]


def load_case(image: Path, truth: Path, scribbles: Path):
    """(uint8 RGB, truth 0/128/255 (row, col), scribbles uint8 palette indices)."""
    from maskwork.core.io import read_image

    rgb = read_image(image)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=2)
    rgb = np.ascontiguousarray(rgb[..., :3])
    gt = read_image(truth)
    if gt.ndim == 3:  # one ground truth (124084) is stored as RGB with equal channels
        gt = gt[..., 0]
    seeds = read_image(scribbles)
    if gt.shape != rgb.shape[:2] or seeds.shape != rgb.shape[:2]:
        raise ValueError(f"sizes differ: image {rgb.shape[:2]}, truth {gt.shape}, scribbles {seeds.shape}")
    return rgb, gt, np.ascontiguousarray(seeds.astype(np.uint8))


def upscale(rgb, truth, seeds, megapixels: float = MEGAPIXELS):
    """Image (bicubic), truth and scribbles (nearest) resized to about ``megapixels``."""
    rows, cols = rgb.shape[:2]
    scale = np.sqrt(megapixels * 1e6 / (rows * cols))
    size = (round(cols * scale), round(rows * scale))
    return (
        cv2.resize(rgb, size, interpolation=cv2.INTER_CUBIC),
        cv2.resize(truth, size, interpolation=cv2.INTER_NEAREST),
        cv2.resize(seeds, size, interpolation=cv2.INTER_NEAREST),
    )


# -- the methods (each returns a boolean foreground mask) -----------------------------
def mw_grabcut(rgb, seeds):
    from maskwork.operators import get

    return get("grabcut").run({"image": rgb, "markers": seeds}, {"iterations": GRABCUT_ITERATIONS})["mask"]


def mw_random_walker(rgb, seeds):
    from maskwork.operators import get

    return get("random_walker").run({"image": rgb, "markers": seeds})["labels"] == FOREGROUND


def mw_watershed(method):
    def run(rgb, seeds):
        from maskwork.operators import get

        return get("watershed").run({"image": rgb, "markers": seeds}, {"method": method})["labels"] == FOREGROUND

    return run


def mw_merge_superpixels(rgb, seeds):
    from maskwork.operators import get

    return get("merge_superpixels").run({"image": rgb, "markers": seeds})["mask"]


def plain_grabcut(rgb, seeds):
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    mask = np.full(seeds.shape, cv2.GC_PR_BGD, np.uint8)
    mask[seeds == BACKGROUND] = cv2.GC_BGD
    mask[seeds == FOREGROUND] = cv2.GC_FGD
    cv2.setRNGSeed(0)  # maskwork seeds OpenCV's k-means the same way
    cv2.grabCut(bgr, mask, None, np.zeros((1, 65)), np.zeros((1, 65)), GRABCUT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def plain_random_walker(rgb, seeds):
    from skimage.segmentation import random_walker

    return random_walker(rgb, seeds, channel_axis=-1) == FOREGROUND


def plain_watershed_opencv(rgb, seeds):
    flooded = seeds.astype(np.int32)
    cv2.watershed(np.ascontiguousarray(rgb[..., ::-1]), flooded)
    return flooded == FOREGROUND  # -1 (lines between regions, image border) counts as background


def plain_watershed_skimage(rgb, seeds):
    from skimage.color import rgb2gray
    from skimage.filters import sobel
    from skimage.segmentation import watershed

    return watershed(sobel(rgb2gray(rgb)), seeds) == FOREGROUND


def plain_watershed_simpleitk(rgb, seeds):
    import SimpleITK as sitk
    from skimage.color import rgb2gray

    gradient = sitk.GradientMagnitude(sitk.GetImageFromArray(rgb2gray(rgb).astype(np.float32)))
    markers = sitk.GetImageFromArray(seeds.astype(np.uint32))
    labels = sitk.MorphologicalWatershedFromMarkers(gradient, markers, markWatershedLine=False, fullyConnected=False)
    return sitk.GetArrayViewFromImage(labels) == FOREGROUND


#: (maskwork operator, its function, plain call, its function or None)
METHODS = (
    ("grabcut (markers, no box)", mw_grabcut, "cv2.grabCut GC_INIT_WITH_MASK, 5 it", plain_grabcut),
    ("random_walker", mw_random_walker, "skimage random_walker (cg_j)", plain_random_walker),
    ("watershed opencv", mw_watershed("opencv"), "cv2.watershed(bgr)", plain_watershed_opencv),
    ("watershed skimage", mw_watershed("skimage"), "skimage watershed(sobel(gray))", plain_watershed_skimage),
    ("watershed simpleitk", mw_watershed("simpleitk"), "sitk MorphWatershedFromMarkers(GradMag)", plain_watershed_simpleitk),
    ("merge_superpixels", mw_merge_superpixels, "(no single library call)", None),
)
SHORT = ("gc", "rw", "wsO", "wsK", "wsI", "sp")


def timed(func, rgb, seeds):
    """(mask or None, seconds, error text or '', warnings raised)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        try:
            mask = np.asarray(func(rgb, seeds), bool)
            error = ""
        except Exception as exc:  # noqa: BLE001 -- a failure is a result here
            mask, error = None, f"{type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
    return mask, seconds, error, len(caught)


def warm_up(case) -> None:
    """Run every method once on a small copy: imports and first-call costs stay out."""
    rgb, _, seeds = load_case(*case[1:])
    small = (rgb.shape[1] // 3, rgb.shape[0] // 3)
    rgb = cv2.resize(rgb, small, interpolation=cv2.INTER_AREA)
    seeds = cv2.resize(seeds, small, interpolation=cv2.INTER_NEAREST)
    for _, mw, _, plain in METHODS:
        timed(mw, rgb, seeds)
        if plain is not None:
            timed(plain, rgb, seeds)


# -- 1. the table -----------------------------------------------------------------------
def section_quality(data: Path, limit: int) -> None:
    cases = list_cases(data)
    chosen = evenly_spaced(cases, limit)
    print(f"\n1. Seeded segmentation at the original size, scribbles-set-1, {len(chosen)} of {len(cases)} images", flush=True)
    if len(chosen) < len(cases):
        print(f"   (--limit {limit}: images evenly spaced over the sorted set, to keep the whole run under about 10 "
              f"minutes on 2 cores; --limit {len(cases)} scores all of them in about 10 minutes for this section "
              f"alone on 2 idle cores, 15 with another job running)")
    print("   per image: IoU maskwork/plain for " + ", ".join(f"{s}={m[0]}" for s, m in zip(SHORT, METHODS)), flush=True)
    warm_up(chosen[0])
    results = {m[0]: {"mw": [], "plain": [], "mw_s": [], "plain_s": [], "errors": [], "warned": 0, "plain_warned": 0}
               for m in METHODS}
    for case in chosen:
        name = case[0]
        try:
            rgb, truth, seeds = load_case(*case[1:])
        except (ValueError, OSError) as error:
            print(f"   {name:<10} skipped: {error}")
            continue
        cells = []
        for short, (label, mw, _, plain) in zip(SHORT, METHODS):
            r = results[label]
            mask, seconds, error, warned = timed(mw, rgb, seeds)
            r["mw"].append(iou(mask, truth) if mask is not None else 0.0)
            r["mw_s"].append(seconds)
            r["warned"] += bool(warned)
            if error:
                r["errors"].append(f"{name} maskwork: {error}")
            text = f"{short} {r['mw'][-1]:.2f}"
            if plain is not None:
                mask, seconds, error, warned = timed(plain, rgb, seeds)
                r["plain"].append(iou(mask, truth) if mask is not None else 0.0)
                r["plain_s"].append(seconds)
                r["plain_warned"] += bool(warned)
                if error:
                    r["errors"].append(f"{name} plain: {error}")
                text += f"/{r['plain'][-1]:.2f}"
            cells.append(text)
        print(f"   {name:<10} {rgb.shape[1]:>3}x{rgb.shape[0]:<3} " + "  ".join(cells), flush=True)

    header = (f"{'maskwork operator':<26} {'IoU':>6} {'s/img':>6}   {'plain call':<40} {'IoU':>6} {'s/img':>6} "
              f"{'plain s/mw s':>12} {'mw>pl':>5} {'mw<pl':>5}")
    print()
    print(header)
    print("-" * len(header))
    for label, _, plain_label, plain in METHODS:
        r = results[label]
        if not r["mw"]:
            continue
        mean_mw, median_mw = statistics.fmean(r["mw"]), statistics.median(r["mw_s"])
        line = f"{label:<26} {mean_mw:>6.3f} {median_mw:>6.3f}   {plain_label:<40} "
        if plain is not None:
            mean_pl, median_pl = statistics.fmean(r["plain"]), statistics.median(r["plain_s"])
            better = sum(a > b + 0.01 for a, b in zip(r["mw"], r["plain"]))
            worse = sum(a < b - 0.01 for a, b in zip(r["mw"], r["plain"]))
            line += f"{mean_pl:>6.3f} {median_pl:>6.3f} {median_pl / median_mw:>11.2f}x {better:>5} {worse:>5}"
        else:
            line += f"{'-':>6} {'-':>6} {'-':>12} {'-':>5} {'-':>5}"
        print(line)
    print(f"({len(results[METHODS[0][0]]['mw'])} images; IoU = mean over images, ignoring the 128 band; s/img = median "
          "seconds; plain s/mw s = ratio of the medians (> 1: maskwork faster); mw>pl / mw<pl = images where maskwork's "
          "IoU is higher / lower by more than 0.01)")
    for label, *_ in METHODS:
        r = results[label]
        if r["warned"] or r["plain_warned"]:
            print(f"note: {label}: warnings on {r['warned']} images (maskwork), {r['plain_warned']} (plain call)")
        for error in r["errors"]:
            print(f"note: {label} failed on {error} (scored IoU 0)")


# -- 2. random walker on 2 MP -----------------------------------------------------------
def section_random_walker(data: Path, photos: int) -> None:
    cases = {case[0]: case for case in list_cases(data)}
    names = [name for name in RW_PHOTOS if name in cases][: max(0, photos)]
    print(f"\n2. Random walker on ~{MEGAPIXELS:g} MP colour photos ({len(names)} benchmark photos upscaled: image bicubic, "
          "truth and scribbles nearest)", flush=True)
    header = f"{'photo':<10} {'size':>10} {'maskwork s':>10} {'skimage s':>10} {'speedup':>8} {'IoU mw':>7} {'IoU sk':>7}"
    print(header)
    print("-" * len(header))
    rows = []
    for name in names:
        rgb, truth, seeds = upscale(*load_case(*cases[name][1:]))
        mw_mask, mw_s, mw_error, _ = timed(mw_random_walker, rgb, seeds)
        sk_mask, sk_s, sk_error, sk_warned = timed(plain_random_walker, rgb, seeds)
        if mw_error or sk_error:
            print(f"{name:<10} failed: {mw_error or sk_error}")
            continue
        row = (mw_s, sk_s, sk_s / mw_s, iou(mw_mask, truth), iou(sk_mask, truth))
        rows.append(row)
        size = f"{rgb.shape[1]}x{rgb.shape[0]}"
        print(f"{name:<10} {size:>10} {row[0]:>10.2f} {row[1]:>10.2f} {row[2]:>7.1f}x {row[3]:>7.3f} {row[4]:>7.3f}"
              + ("  (skimage warned)" if sk_warned else ""), flush=True)
    if not rows:
        return
    print("-" * len(header))
    med = [statistics.median(r[i] for r in rows) for i in range(5)]
    print(f"{'median':<10} {'':>10} {med[0]:>10.2f} {med[1]:>10.2f} {med[2]:>7.1f}x {med[3]:>7.3f} {med[4]:>7.3f}")
    diou = statistics.fmean(r[3] - r[4] for r in rows)
    ok = med[2] >= 5 and diou >= -0.005
    print(f"summary: median speedup {med[2]:.1f}x (target >= 5x), mean IoU maskwork - skimage {diou:+.4f} "
          f"(target >= 0): {'ok' if ok else 'MISS'}")


# -- 3. end of a scribble to the preview on screen --------------------------------------
def stroke_points(truth: np.ndarray, index: int, radius: float) -> list[tuple[float, float]]:
    """The ``index``-th short horizontal foreground scribble, well inside the object.

    Scribbles lie on different rows (0, +s, -s, +2s, ... from the object's deepest point,
    s = 2 * radius + 3), so each one paints new marker pixels and starts a new preview.
    """
    inside = (truth == 255).astype(np.uint8)
    distance = cv2.distanceTransform(inside, cv2.DIST_L2, 5)
    centre_row = int(np.unravel_index(int(np.argmax(distance)), distance.shape)[0])
    step = 2 * int(np.ceil(radius)) + 3
    candidates = [centre_row + sign * k * step for k in range(0, 200) for sign in ((1,) if k == 0 else (1, -1))]
    usable = [r for r in candidates if 0 <= r < truth.shape[0] and distance[r].max() > radius + 6]
    row = usable[index % len(usable)]
    col = int(np.argmax(distance[row]))
    half = max(4.0, min(60.0, 0.6 * float(distance[row, col]) - radius))
    steps = 10
    return [(float(row), col - half + 2 * half * i / steps) for i in range(steps + 1)]


def brush_drag(canvas, points) -> float:
    """Press, move and release the left button along (row, col) ``points``; returns the release time."""
    from PySide6.QtCore import QEvent, Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication
    from window_speed import MOVE_INTERVAL_MS, _send, _widget_point

    viewport = canvas.graphics.viewport()
    QApplication.processEvents()
    left = Qt.MouseButton.LeftButton
    positions = [_widget_point(canvas, r, c) for r, c in points]
    QTest.qWait(MOVE_INTERVAL_MS)
    _send(viewport, QEvent.Type.MouseButtonPress, positions[0], left, left)
    for pos in positions[1:]:
        QTest.qWait(MOVE_INTERVAL_MS)
        _send(viewport, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, left)
    QTest.qWait(MOVE_INTERVAL_MS)
    released = time.perf_counter()
    _send(viewport, QEvent.Type.MouseButtonRelease, positions[-1], left, Qt.MouseButton.NoButton)
    return released


def scribble_latency(window, points) -> dict:
    """One brush scribble; seconds from the release to each stage of the preview."""
    return preview_latency(window, lambda: brush_drag(window.canvas, points))


def preview_latency(window, act) -> dict:
    """Seconds from the mouse release to each stage of the preview it starts.

    ``act()`` gives the input (a scribble, a click) and returns the time of the release.
    Stages: "seeds" (the document changed), "started", "first data", "last data",
    "finished", "first painted" and "final painted"; plus the forced repaint times, the
    number of preview updates and an error message ("" when none).
    """
    from window_speed import repaint_seconds, run_loop

    runner = window.runner
    marks: dict[str, float] = {}
    connected = []
    state = {"updates": 0, "error": ""}

    def on_data(bounds=None) -> None:
        now = time.perf_counter()
        marks.setdefault("first data", now)
        marks["last data"] = now
        state["updates"] += 1

    def watch(layer) -> None:
        if layer is not None and all(layer is not other for other in connected):
            layer.data_changed.connect(on_data)
            connected.append(layer)

    def on_preview_changed(layer) -> None:
        if layer is not None:
            watch(layer)
            on_data()

    def on_seeds() -> None:
        marks.setdefault("seeds", time.perf_counter())

    def on_busy(busy: bool) -> None:
        if busy:
            marks.setdefault("started", time.perf_counter())
        elif "started" in marks:
            marks.setdefault("finished", time.perf_counter())

    def on_failed(error) -> None:
        state["error"] = error.message
        marks.setdefault("finished", time.perf_counter())

    watch(runner.preview_layer)
    runner.preview_changed.connect(on_preview_changed)
    runner.busy_changed.connect(on_busy)
    runner.failed.connect(on_failed)
    window.document.history.changed.connect(on_seeds)
    try:
        released = act()
        if not run_loop(2.0, lambda: "seeds" in marks):
            state["error"] = "the input changed no seed"
            marks["finished"] = time.perf_counter()
        run_loop(60.0, lambda: "first data" in marks or "finished" in marks)
        first_repaint = repaint_seconds(window)
        marks["first painted"] = time.perf_counter()
        run_loop(120.0, lambda: "finished" in marks)
        final_repaint = repaint_seconds(window)
        marks["final painted"] = time.perf_counter()
    finally:
        runner.preview_changed.disconnect(on_preview_changed)
        runner.busy_changed.disconnect(on_busy)
        runner.failed.disconnect(on_failed)
        window.document.history.changed.disconnect(on_seeds)
        for layer in connected:
            layer.data_changed.disconnect(on_data)
    result = {name: t - released for name, t in marks.items()}
    result["first repaint"] = first_repaint
    result["final repaint"] = final_repaint
    result["updates"] = state["updates"]
    result["error"] = state["error"]
    return result


def section_window(data: Path, trials: int) -> None:
    import PySide6
    import pyqtgraph as pg

    from maskwork.app.application import create_application
    from maskwork.core.layers import Layer, LayerKind
    from maskwork.operators import get
    from maskwork.widgets.canvas import Tool
    from window_speed import ms, run_loop, wait_workers

    cases = {case[0]: case for case in list_cases(data)}
    name = next(n for n in RW_PHOTOS if n in cases)
    rgb, truth, seeds = upscale(*load_case(*cases[name][1:]))
    print(f"\n3. End of a foreground scribble to the preview on screen (real window, {name} upscaled to "
          f"{rgb.shape[1]} x {rgb.shape[0]}, its scribbles as the markers layer, auto-preview on)", flush=True)
    with tempfile.TemporaryDirectory(prefix="maskwork-segmentation-quality-") as tmp:
        tmp = Path(tmp)
        os.environ["MASKWORK_CONFIG_DIR"] = str(tmp / "config")
        app = create_application()
        from PySide6.QtWidgets import QMessageBox
        from maskwork.app.application import manage_garbage
        from maskwork.app.main_window import MainWindow

        print(f"   PySide6 {PySide6.__version__}, pyqtgraph {pg.__version__}, "
              f"QT_QPA_PLATFORM={os.environ.get('QT_QPA_PLATFORM', '(default)')}, OpenCV threads {cv2.getNumThreads()}, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        window = MainWindow()
        window.ask = lambda title, question: True
        # discard without the Save / Don't save / Cancel prompt when the next image opens
        window.ask_to_save = lambda: QMessageBox.StandardButton.Discard
        window.show()
        # as maskwork itself runs it: start-up objects frozen, cycles collected only between runs
        manage_garbage(window)
        window.resize(1400, 900)
        run_loop(0.3)
        path = tmp / f"{name}_2mp.png"
        cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if not window.open_paths([path]):
            print("   could not open the photo in the window")
            return
        markers = window.document.add_layer(Layer(seeds, LayerKind.MARKERS, "markers"))
        window.document.layers.selected = markers
        canvas = window.canvas
        canvas.fit()
        run_loop(0.3)
        radius = 4.0
        strokes = 0  # every scribble on new pixels
        rows = []
        for op_id in ("random_walker", "grabcut"):
            spec = get(op_id)
            window.choose_operator(spec)
            window.operator_panel.auto_preview = True  # the checkbox: previews at once
            window.runner.set_auto_preview(True)
            run_loop(60.0, lambda: not window.runner.busy)
            run_loop(0.2)
            canvas.tool = Tool.BRUSH
            canvas.brush_radius = radius
            canvas.active_label = FOREGROUND
            window.document.layers.selected = markers
            fresh, again = [], []
            for trial in range(trials):
                window.runner.clear_preview()
                run_loop(0.1)
                fresh.append(scribble_latency(window, stroke_points(truth, strokes, radius)))
                run_loop(0.2)
                again.append(scribble_latency(window, stroke_points(truth, strokes + 1, radius)))
                strokes += 2
                run_loop(0.2)
            preview = window.runner.preview_layer
            if preview is not None:
                shown = preview.data == FOREGROUND
                rows.append(f"{spec.title}: IoU of the last preview's foreground {iou(shown, truth):.3f}")
            for label, results in (("no preview showing", fresh), ("over a preview", again)):
                errors = [r["error"] for r in results if r["error"]]
                first = [r["first painted"] for r in results]
                final = [r["final painted"] for r in results]
                verdict = "ok" if statistics.median(first) < 0.3 else "MISS"
                print(f"   {spec.title}, {label}: release -> first preview painted median {ms(statistics.median(first))} "
                      f"(all: {', '.join(ms(t) for t in first)}) [target < 300 ms: {verdict}]; "
                      f"-> final preview painted median {ms(statistics.median(final))} "
                      f"(all: {', '.join(ms(t) for t in final)})" + (f"; ERRORS: {errors}" if errors else ""), flush=True)
                parts = []
                for stage in ("seeds", "started", "first data", "last data", "finished"):
                    values = [r[stage] for r in results if stage in r]
                    if values:
                        parts.append(f"{stage} +{ms(statistics.median(values))}")
                parts.append(f"forced repaint {ms(statistics.median(r['first repaint'] for r in results))}")
                parts.append(f"preview updates per scribble {statistics.median(r['updates'] for r in results):.0f}")
                print(f"     breakdown (medians after release): {'; '.join(parts)}")
            window.operator_panel.auto_preview = False
            window.runner.set_auto_preview(False)
            window.runner.cancel()
            window.runner.clear_preview()
            wait_workers()
        for row in rows:
            print(f"   {row}")
        window.document.history.mark_saved()
        window.close()
        app.processEvents()


def main(argv=None) -> int:
    args = parse_args(argv)
    data = args.data
    missing = missing_data_message(data)
    if missing:
        print(missing)
        return 0
    sections = {int(s) for s in args.sections.split(",") if s.strip()}
    import skimage

    print(f"maskwork seeded segmentation benchmark; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads), scikit-image {skimage.__version__}", flush=True)
    started = time.perf_counter()
    if 1 in sections:
        section_quality(data, args.limit)
    if 2 in sections:
        section_random_walker(data, args.rw_photos)
    if 3 in sections:
        section_window(data, args.trials)
    print(f"\ntotal {time.perf_counter() - started:.0f} s; load average (1 min) at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
