"""Inpainting quality and speed on photos: PSNR, SSIM and kept detail inside holes put on
background, and CPU seconds per megapixel of hole, for maskwork's ``inpaint`` methods.

    .venv/bin/python benchmarks/inpaint_quality.py [--data DIR] [--methods a,b,...] [--save DIR]
        [--package-root DIR] [--set SET] [--grabcut DIR]

Photos, split once into a TUNING set (the only one looked at while the exemplar method's
constants were chosen) and a REPORTING set (never tuned on), and the same way into
GRABCUT-TUNING and GRABCUT-REPORTING sets with holes placed as they come; ``--set`` picks
one, ``both`` (tuning and reporting), ``grabcut`` (its two) or ``all`` (the default):

- the latent-diffusion inpainting examples (default ``../shared/data/inpainting`` beside
  the repository; ``NAME.png`` + ``NAME_mask.png`` pairs, searched recursively, sorted by
  name): eight 512 x 512 photos, each with a mask over an object; the 1st, 3rd, 5th and
  7th tune, the others report. Without the folder only scikit-image's photos are used.
- scikit-image's photos. Tuning: ``chelsea`` (the cat's fur), ``grass``, ``brick``,
  ``gravel``. Reporting: ``astronaut`` (the flag and the wall), ``coffee`` (the wooden
  table), ``rocket`` (sky and launch towers). Gray ones are repeated to RGB. They have no
  object mask: the background each hole may cover is listed below as rectangles
  (``BACKGROUND``), chosen by looking at the photos, not at any fill.
- GRABCUT-*: the GrabCut benchmark's photos (default ``../shared/data/grabcut``:
  ``images/`` and ``ground-truth/NAME.png``, 0 background, 128 border band, 255 object;
  48 photos of 284 x 398 to 640 x 480 px, animals, people, flowers, objects in everyday
  scenes), sorted by name: the 1st, 3rd, ... tune, the others report. The object and its
  border band are the object mask. Added on 2026-12-07, after every constant before then
  was chosen.

The masks of the latent-diffusion examples cover objects, so the photo inside them is the
object, not what a fill should produce: scoring a fill there measures nothing. Holes are
put on background instead (the object's mask grown by 24 px, or everything outside the
listed rectangles, is forbidden; holes stay 4 px inside the frame; placements on an 8 px
grid), and each fill is compared with the untouched photo:

- ``shape`` (latent-diffusion photos only): the photo's own mask shape, scaled by the
  largest of 1, 0.75, 0.5, 0.35, 0.25 at which it fits on background, at a random allowed
  place (seeded): background as it comes, textured or not;
- ``sq48``, ``sq96`` (48 and 96 px squares) and ``blob`` (an irregular hole, a smoothed
  random field thresholded to about 80 x 80 px, fixed seed): where the least textured pixel
  under the hole is the most textured (texture density = Sobel gradient magnitude of the
  gray photo, box-averaged over 9 px), so the whole hole lies on texture. This choice does
  not look at any method. In the GRABCUT sets these three are put at random allowed
  places instead (seeded), like the shape: background as it comes, the way holes fall
  when a person removes something.

Each hole is filled on its own by each method with its default parameters (``exemplar``
is the default method: patch copies, seams removed in the gradient domain, the band below
a 1 px Gaussian taken from the averaged vote, the band below two patch radii moved towards
the membrane fill of the hole's edge where the sources disagree),
``exemplar averaged`` (``sharp=False``: the weighted patch average of Wexler et al.), plus
three references that are not methods: the naive baseline (the mean colour of a 4 px
ring around the hole); the membrane fill (Laplace's equation with the hole's edge fixed,
the smoothest interpolation of the edge: about what PSNR rewards on random texture); and
the photo beside (the hole filled with the untouched photo's own content from the nearest
place where the hole's shape covers neither the hole nor a forbidden pixel; left out where
there is none): real texture of the same kind, as sharp and natural as a fill can be but
not the content that was there, the PSNR a perfect texture synthesis without knowledge of
the hidden content would roughly get. Scores: PSNR of the
hole pixels (data_range 255; at most 60 dB, which an exact fill of flat black would
exceed to infinity); SSIM as the mean of ``structural_similarity``'s map (data_range
255, channel_axis -1, 7 x 7 window) over the hole pixels, computed on the hole's bounding
box plus 3 px; "detail", the mean Sobel gradient magnitude of the fill inside the hole (2 px
in from its border) over that of the photo there (1 = as much texture as the real content;
a blur scores near 0 however good its PSNR; above 1 = busier than the real content);
"contrast", the same ratio for the spread of the gray fill's band between Gaussians of 1.5
and 6 px (fur stripes, leaf shapes: a fill can keep its finest grain and still be washed
out at this scale); CPU
seconds of the operator call (``time.process_time``: the machine is shared, wall time moves
with the others' load; BLAS is held to one thread so that its idle spinning is not counted)
as the median per hole, and seconds per megapixel of hole both as the median over holes
and as the total over all holes (which large holes dominate: a small hole's cost is mostly
fixed overhead). Every run is checked to leave the pixels outside the hole bit-identical.

PSNR rewards blur on random texture: the pixel-wise best guess there is the local mean,
and a sharp, plausible texture that is not the one that was there scores about 3 dB below
it. Read PSNR beside SSIM and detail. The trade is measured too, with the method's
default fill: ``exemplar, grain x0.8`` (and x0.6, x0.4) is the membrane fill plus that
share of the exemplar fill's departure from it, the exemplar fill with its grain and
structure turned down towards the smooth interpolation of the edge: what PSNR gains as
detail and contrast are given up, not a method (scored, not timed).

Last, a speed check on large holes, where the fixed cost of a call no longer dominates:
the issue's case (a 330 x 300 px hole in the cat's fur, chelsea at twice its size) and a
500 x 500 px hole in grass tiled to 1024 x 1024: CPU seconds per megapixel of hole (the
call made as the window makes it, partial results on) and wall seconds to the first partial
result (the window's first preview), each the median of three calls.

``--package-root DIR`` measures the ``maskwork`` package found in DIR instead of this
repository's, e.g. an older commit unpacked with ``git archive REV maskwork | tar -x -C DIR``,
so an earlier exemplar fill is scored on exactly the same holes.

Not a pass/fail test.
"""

from __future__ import annotations

import os

# One BLAS thread: CPU time then counts work, not the spinning of idle BLAS threads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

DEFAULT_DATA = REPO.parent / "shared" / "data" / "inpainting"
DEFAULT_GRABCUT = REPO.parent / "shared" / "data" / "grabcut"
SETS = ("tuning", "reporting", "grabcut-tuning", "grabcut-reporting")
METHODS = ("exemplar", "telea", "navier_stokes", "biharmonic")
FORBIDDEN_GROW = 24
FRAME = 4
SCALES = (1.0, 0.75, 0.5, 0.35, 0.25)
#: Scores of a hole whose real content is flat (a black night sky): an exact fill counts as
#: PSNR_CAP dB, not infinity, and the detail and contrast ratios divide by at least these
#: (a mean Sobel magnitude of 1, about an eighth of a grey level per pixel; a band spread of
#: 0.25 grey levels: invisible), not by nearly 0, so one such hole cannot make a mean. (The
#: tuning and reporting sets' holes stay above both: their scores are as before.)
PSNR_CAP, FLAT_DETAIL, FLAT_CONTRAST = 60.0, 1.0, 0.25
#: Fills scored beside the methods, not timed: the naive one first.
REFERENCES = ("mean ring (naive)", "membrane (smooth)", "photo beside")
#: The trade rows: share of the exemplar fill's departure from the membrane fill kept -> row name.
GRAIN_ROWS = {share: f"exemplar, grain x{share:g}" for share in (0.8, 0.6, 0.4)}
GRID = 8
#: scikit-image photos: set, and the background rectangles (top, bottom, left, right) holes may cover.
BACKGROUND = {
    "chelsea": ("tuning", [(0, 300, 0, 125), (0, 55, 0, 451), (0, 300, 365, 451)]),
    "grass": ("tuning", [(0, 512, 0, 512)]),
    "brick": ("tuning", [(0, 512, 0, 512)]),
    "gravel": ("tuning", [(0, 512, 0, 512)]),
    "astronaut": ("reporting", [(0, 440, 0, 95), (0, 270, 285, 355)]),
    "coffee": ("reporting", [(0, 400, 0, 150), (0, 400, 470, 600), (0, 95, 0, 600)]),
    "rocket": ("reporting", [(0, 300, 200, 290), (0, 300, 345, 435), (0, 250, 470, 560)]),
}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"data folder (default {DEFAULT_DATA})")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated methods (default all)")
    parser.add_argument("--set", choices=SETS + ("both", "grabcut", "all"), default="all",
                        help="photo set(s): both = tuning and reporting, grabcut = its two (default all)")
    parser.add_argument("--grabcut", type=Path, default=DEFAULT_GRABCUT,
                        help=f"GrabCut data folder of the GRABCUT sets (default {DEFAULT_GRABCUT})")
    parser.add_argument("--save", type=Path, default=None, help="write a PNG montage of every fill to this folder")
    parser.add_argument("--package-root", type=Path, default=REPO,
                        help="directory whose maskwork package is measured (default: this repository)")
    return parser.parse_args(argv)


# -- data ---------------------------------------------------------------------------------
def list_pairs(data: Path) -> list[tuple[str, Path, Path]]:
    pairs = []
    for mask in sorted(data.rglob("*_mask.png")):
        image = mask.with_name(mask.name[: -len("_mask.png")] + ".png")
        if image.is_file():
            pairs.append((image.stem, image, mask))
    return pairs


def load(image: Path, mask: Path) -> tuple[np.ndarray, np.ndarray]:
    rgb = cv2.imread(str(image), cv2.IMREAD_COLOR)
    if rgb is None:
        raise ValueError(f"cannot read {image}")
    rgb = np.ascontiguousarray(cv2.cvtColor(rgb, cv2.COLOR_BGR2RGB))
    object_mask = cv2.imread(str(mask), cv2.IMREAD_GRAYSCALE)
    if object_mask is None or object_mask.shape != rgb.shape[:2]:
        raise ValueError(f"cannot read {mask} or its size differs from the photo's")
    return rgb, object_mask > 127


# -- holes on background ------------------------------------------------------------------
def texture(rgb: np.ndarray) -> np.ndarray:
    """Texture density: Sobel gradient magnitude of the gray photo, box-averaged over 9 px."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.blur(np.sqrt(gx * gx + gy * gy), (9, 9))


def place(shape: np.ndarray, forbidden: np.ndarray, density: np.ndarray | None, rng=None) -> np.ndarray | None:
    """The shape put where it covers no forbidden pixel; None if it fits nowhere.

    With ``density``: where the least textured pixel under the shape is the most textured
    (texture throughout the hole, not one strong edge crossing flat ground). Without: at a
    random allowed place (``rng``).
    """
    rows, cols = forbidden.shape
    h, w = shape.shape
    if h > rows - 2 * FRAME or w > cols - 2 * FRAME:
        return None
    kernel = shape.astype(np.uint8)
    # Placement (top-left corner) -> forbidden pixels covered; -> least texture covered.
    overlap = cv2.matchTemplate(forbidden.astype(np.float32), shape.astype(np.float32), cv2.TM_CCORR)
    allowed = []
    for y in range(FRAME, rows - h - FRAME + 1, GRID):
        for x in range(FRAME, cols - w - FRAME + 1, GRID):
            if overlap[y, x] < 0.5:
                allowed.append((y, x))
    if not allowed:
        return None
    if density is not None:
        least = cv2.erode(density, kernel, anchor=(0, 0), borderType=cv2.BORDER_REPLICATE)
        y, x = max(allowed, key=lambda yx: least[yx])
    else:
        y, x = allowed[int(rng.integers(len(allowed)))]
    hole = np.zeros((rows, cols), bool)
    hole[y : y + h, x : x + w] = shape
    return hole


def crop_to_content(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def blob(size: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.standard_normal((size, size)).astype(np.float32), (0, 0), size / 8)
    rows, cols = np.ogrid[:size, :size]
    taper = 1.0 - (((rows - size / 2) ** 2 + (cols - size / 2) ** 2) / (size / 2) ** 2)
    shape = (field / field.std() + 2.0 * taper) > 1.0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(shape.astype(np.uint8), connectivity=8)
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return crop_to_content(labels == largest)


def holes_for(rgb: np.ndarray, forbidden: np.ndarray, object_mask: np.ndarray | None,
              seed: int = 0, on_texture: bool = True) -> list[tuple[str, np.ndarray]]:
    """(kind, hole) pairs on background: the object's shape anywhere, squares and a blob on
    texture (``on_texture``) or anywhere too."""
    density = texture(rgb) if on_texture else None
    rng = np.random.default_rng(seed)
    holes = []
    if object_mask is not None:
        shape = crop_to_content(object_mask)
        for scale in SCALES:
            size = (max(8, round(shape.shape[1] * scale)), max(8, round(shape.shape[0] * scale)))
            scaled = cv2.resize(shape.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
            hole = place(scaled, forbidden, None, rng)
            if hole is not None:
                holes.append((f"shape x{scale:g}", hole))
                break
    for side in (48, 96):
        hole = place(np.ones((side, side), bool), forbidden, density, rng)
        if hole is not None:
            holes.append((f"sq{side}", hole))
    hole = place(blob(), forbidden, density, rng)
    if hole is not None:
        holes.append(("blob", hole))
    return holes


def grown(object_mask: np.ndarray) -> np.ndarray:
    """The object's mask grown by FORBIDDEN_GROW pixels: where no hole may go."""
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * FORBIDDEN_GROW + 1, 2 * FORBIDDEN_GROW + 1))
    return cv2.dilate(object_mask.astype(np.uint8), disc) > 0


def grabcut_pairs(grabcut: Path) -> list[tuple[str, Path, Path]]:
    """(name, photo, ground truth) of the GrabCut photos that have a ground truth, by name."""
    if not (grabcut / "images").is_dir():
        return []
    pairs = []
    for image in sorted((grabcut / "images").iterdir()):
        truth = grabcut / "ground-truth" / f"{image.stem}.png"
        if truth.is_file():
            pairs.append((image.stem, image, truth))
    return pairs


def chosen_sets(which: str) -> tuple[str, ...]:
    """The sets ``--set`` names."""
    return {"both": SETS[:2], "grabcut": SETS[2:], "all": SETS}.get(which, (which,))


def photos(data: Path, which: str, grabcut: Path):
    """(set, name, rgb, forbidden, object mask or None) of every photo in the chosen set(s)."""
    from skimage import data as skdata

    chosen = chosen_sets(which)
    pairs = list_pairs(data) if data.is_dir() else []
    for index, (name, image_path, mask_path) in enumerate(pairs):
        group = "tuning" if index % 2 == 0 else "reporting"
        if group in chosen:
            rgb, object_mask = load(image_path, mask_path)
            yield group, name, rgb, grown(object_mask), object_mask
    for index, (name, image_path, truth_path) in enumerate(grabcut_pairs(grabcut)):
        group = "grabcut-tuning" if index % 2 == 0 else "grabcut-reporting"
        if group in chosen:
            rgb, object_mask = load(image_path, truth_path)  # the border band (128) counts as object
            yield group, name, rgb, grown(object_mask), object_mask
    for name, (group, rectangles) in BACKGROUND.items():
        if group in chosen:
            image = getattr(skdata, name)()
            rgb = np.ascontiguousarray(np.dstack([image] * 3) if image.ndim == 2 else image[..., :3])
            forbidden = np.ones(rgb.shape[:2], bool)
            for top, bottom, left, right in rectangles:
                forbidden[top:bottom, left:right] = False
            yield group, name, rgb, forbidden, None


# -- scoring ------------------------------------------------------------------------------
def scores(filled: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    with np.errstate(divide="ignore"):  # an exact fill (flat black sky) is infinitely good
        psnr = peak_signal_noise_ratio(truth[hole].astype(np.float64), filled[hole].astype(np.float64),
                                       data_range=255)
    psnr = min(psnr, PSNR_CAP)
    ys, xs = np.nonzero(hole)
    pad = 3
    box = (slice(max(0, ys.min() - pad), ys.max() + 1 + pad), slice(max(0, xs.min() - pad), xs.max() + 1 + pad))
    _, ssim_map = structural_similarity(
        truth[box], filled[box], data_range=255, channel_axis=-1, win_size=7, full=True
    )
    ssim = float(ssim_map.mean(axis=-1)[hole[box]].mean())
    return float(psnr), ssim


def detail(filled: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    """Texture kept: mean Sobel gradient magnitude inside the hole (2 px in from its
    border), of the fill over that of the untouched photo. 1 = as much detail as the real
    content; a blur scores near 0 however good its PSNR."""
    inner = cv2.erode(hole.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    if not inner.any():
        inner = hole

    def energy(rgb):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return np.hypot(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))[inner].mean()

    return float(energy(filled) / max(energy(truth), FLAT_DETAIL))


def contrast(filled: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    """Mid-scale contrast kept: the spread of the gray fill's band between Gaussians of 1.5
    and 6 px (fur stripes, leaf shapes, pebbles) inside the hole (4 px in from its
    border), over that of the untouched photo there. "detail" sees the finest grain; a
    fill can keep it and still be washed out at this scale (milky)."""
    inner = cv2.erode(hole.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    if not inner.any():
        inner = hole

    def spread(rgb):
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return (cv2.GaussianBlur(gray, (0, 0), 1.5) - cv2.GaussianBlur(gray, (0, 0), 6.0))[inner].std()

    return float(spread(filled) / max(spread(truth), FLAT_CONTRAST))


def photo_beside(rgb: np.ndarray, hole: np.ndarray, forbidden: np.ndarray) -> np.ndarray | None:
    """The hole filled with the photo's own pixels from the nearest place where the hole's
    shape covers neither the hole nor a forbidden pixel (an object, or outside the listed
    background); None when there is no such place."""
    ys, xs = np.nonzero(hole)
    top, left = ys.min(), xs.min()
    shape = hole[top : ys.max() + 1, left : xs.max() + 1].astype(np.float32)
    blocked = cv2.matchTemplate((forbidden | hole).astype(np.float32), shape, cv2.TM_CCORR)
    free = np.argwhere(blocked < 0.5)
    if not free.size:
        return None
    y, x = free[np.argmin((free[:, 0] - top) ** 2 + (free[:, 1] - left) ** 2)]
    out = rgb.copy()
    out[ys, xs] = rgb[ys - top + y, xs - left + x]
    return out


def membrane_fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The hole filled by the membrane (harmonic) interpolation of its edge: every hole
    pixel the mean of its four neighbours, the known pixels fixed; solved exactly with this
    repository's grid Laplacian, loaded from its file so that the reference stays the same
    whichever package ``--package-root`` measures (holes stay inside the frame)."""
    from scipy.sparse.linalg import spsolve

    laplacian = _repository_module("maskwork/operators/grid_laplacian.py")
    rows, cols = hole.shape
    horizontal, vertical = np.ones((rows, cols - 1)), np.ones((rows - 1, cols))
    system = laplacian.restricted_laplacian(horizontal, vertical, hole).tocsc()
    out = rgb.copy()
    for channel in range(rgb.shape[2]):
        known = np.where(hole, 0.0, rgb[..., channel].astype(np.float64))
        right = laplacian.boundary_terms(horizontal, vertical, known)[hole]
        out[..., channel][hole] = np.clip(np.round(spsolve(system, right)), 0, 255)
    return out


@functools.cache
def _repository_module(relative: str):
    """A module of this repository loaded from its file, once (it imports numpy and SciPy only)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(Path(relative).stem + "_of_this_repository", REPO / relative)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ring_mean_fill(rgb: np.ndarray, hole: np.ndarray) -> np.ndarray:
    ring = cv2.dilate(hole.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool) & ~hole
    out = rgb.copy()
    out[hole] = np.round(rgb[ring].mean(axis=0)).astype(np.uint8)
    return out


def timed_fill(spec, rgb: np.ndarray, hole: np.ndarray, name: str, params: dict, ctx=None) -> tuple[np.ndarray, float]:
    """(filled photo, CPU seconds of the call, made with ``ctx`` if given); raises if a
    pixel outside the hole changed."""
    start = time.process_time()
    filled = spec.run({"image": rgb, "mask": hole}, params, ctx)["image"]
    seconds = time.process_time() - start
    if not np.array_equal(filled[~hole], rgb[~hole]):
        raise AssertionError(f"{name} changed pixels outside the hole")
    return filled, seconds


def summary(rows: list, names: list[str], group: str) -> None:
    """The table of one photo set: means over its holes, per method."""
    mine_all = [r for r in rows if r[0] == group]
    if not mine_all:
        return
    photos_in = sorted({r[1] for r in mine_all})
    print(f"\n{group.upper()} set: {len(photos_in)} photos ({', '.join(p[:14] for p in photos_in)})")
    print(f"{'method':20s} {'holes':>5s} {'PSNR dB':>8s} {'SSIM':>6s} {'detail':>7s} {'contrast':>9s} "
          f"{'median s':>9s} {'s/MP med':>9s} {'s/MP all':>9s}")
    for name in names:
        mine = [r for r in mine_all if r[4] == name]
        psnr = statistics.fmean(r[5] for r in mine)
        ssim = statistics.fmean(r[6] for r in mine)
        kept = statistics.fmean(r[8] for r in mine)
        mid = statistics.fmean(r[9] for r in mine)
        scores_text = f"{name:20s} {len(mine):5d} {psnr:8.2f} {ssim:6.3f} {kept:7.2f} {mid:9.2f}"
        if name in REFERENCES or name in GRAIN_ROWS.values():
            print(f"{scores_text} {'-':>9s} {'-':>9s} {'-':>9s}")
            continue
        median = statistics.median(r[7] for r in mine)
        per_mp = statistics.median(r[7] / (r[3] / 1e6) for r in mine)
        overall = sum(r[7] for r in mine) / (sum(r[3] for r in mine) / 1e6)
        print(f"{scores_text} {median:9.3f} {per_mp:9.1f} {overall:9.1f}")
    by_key = {(r[1], r[2], r[4]): r for r in mine_all}
    for name in names:
        if name in ("telea", REFERENCES[0]) or "telea" not in names:
            continue
        keys = [(r[1], r[2]) for r in mine_all if r[4] == name]
        diffs = [by_key[k + (name,)][5] - by_key[k + ("telea",)][5] for k in keys]
        wins = sum(d > 0 for d in diffs)
        print(f"  {name} - telea: PSNR {statistics.fmean(diffs):+.2f} dB (median {statistics.median(diffs):+.2f}, "
              f"higher on {wins} of {len(diffs)}), SSIM "
              f"{statistics.fmean(by_key[k + (name,)][6] - by_key[k + ('telea',)][6] for k in keys):+.3f}")


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(args.package_root.resolve()))
    from maskwork.operators import get

    spec = get("inpaint")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    runs = [(m, {"method": m}) for m in methods]
    if "exemplar" in methods and any(p.name == "sharp" and p.default for p in spec.params):
        runs.insert(methods.index("exemplar") + 1, ("exemplar averaged", {"method": "exemplar", "sharp": False}))
    names = list(REFERENCES) + [name for name, _ in runs]
    if "exemplar" in methods:
        names += list(GRAIN_ROWS.values())
    print(f"inpaint benchmark: maskwork from {args.package_root}; data {args.data}; defaults "
          f"{ {p.name: p.default for p in spec.params} }; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    rows = []  # (set, photo, hole kind, hole pixels, method, psnr, ssim, cpu seconds, detail, contrast)
    for group, photo, rgb, forbidden, object_mask in photos(args.data, args.set, args.grabcut):
        for kind, hole in holes_for(rgb, forbidden, object_mask, on_texture=not group.startswith("grabcut")):
            pixels = int(hole.sum())
            line = [f"{group.replace('grabcut-', 'gc-')[:5]:5s} {photo[:22]:22s} {kind:11s} {pixels:6d} px"]
            references = (ring_mean_fill(rgb, hole), membrane_fill(rgb, hole), photo_beside(rgb, hole, forbidden))
            for name, short, filled in zip(REFERENCES, ("naive", "membr", "besid"), references):
                if filled is None:  # no hole-shaped clean place in the photo
                    line.append(f"{short}     -")
                    continue
                psnr, ssim = scores(filled, rgb, hole)
                rows.append((group, photo, kind, pixels, name, psnr, ssim, 0.0, detail(filled, rgb, hole),
                             contrast(filled, rgb, hole)))
                line.append(f"{short} {psnr:5.2f}")
            fills = []
            for name, params in runs:
                filled, seconds = timed_fill(spec, rgb, hole, name, params)
                psnr, ssim = scores(filled, rgb, hole)
                kept = detail(filled, rgb, hole)
                rows.append((group, photo, kind, pixels, name, psnr, ssim, seconds, kept, contrast(filled, rgb, hole)))
                short = name[:5] + (name.split()[-1][0] if " " in name else "")
                line.append(f"{short} {psnr:5.2f}/{ssim:.2f}/{kept:.2f} {seconds:5.2f}s")
                fills.append(filled)
            if "exemplar" in methods:
                smooth = references[1].astype(np.float64)
                departure = fills[[name for name, _ in runs].index("exemplar")] - smooth
                for share, row_name in GRAIN_ROWS.items():
                    turned_down = np.clip(np.round(smooth + share * departure), 0, 255).astype(np.uint8)
                    rows.append((group, photo, kind, pixels, row_name,
                                 *scores(turned_down, rgb, hole), 0.0, detail(turned_down, rgb, hole),
                                 contrast(turned_down, rgb, hole)))
            print("  ".join(line), flush=True)
            if args.save is not None:
                args.save.mkdir(parents=True, exist_ok=True)
                ys, xs = np.nonzero(hole)
                pad = 48
                box = (slice(max(0, ys.min() - pad), ys.max() + pad), slice(max(0, xs.min() - pad), xs.max() + pad))
                shown = rgb.copy()
                shown[hole] = (255, 0, 255)
                tiles = [rgb[box], shown[box]] + [f[box] for f in fills]
                cv2.imwrite(str(args.save / f"{group}_{photo}_{kind.replace(' ', '_')}.png"),
                            cv2.cvtColor(np.hstack(tiles), cv2.COLOR_RGB2BGR))

    chosen = chosen_sets(args.set)
    for group in SETS:
        if group in chosen and not any(row[0] == group for row in rows):
            folder = args.grabcut if group.startswith("grabcut") else args.data
            print(f"\n{group.upper()} set: no photos (looked in {folder})")
        summary(rows, names, group)
    print("(PSNR, SSIM, detail and contrast: means over holes, inside the hole; detail = gradient energy of the "
          "fill / of the photo there, 1 = as detailed as the real content; contrast = spread of the 1.5-6 px band, "
          "fill / photo (below the copies' own: washed out); seconds: CPU time of the call; s/MP med: median "
          "over holes of CPU seconds per megapixel of hole; s/MP all: total CPU seconds / total megapixels of hole)")
    if args.save is not None:
        print(f"montages (photo | hole | {' | '.join(name for name, _ in runs)}) in {args.save}")
    large_holes(spec, [(name, params) for name, params in runs if params["method"] != "biharmonic"])
    return 0


def large_holes(spec, runs, repeats: int = 3) -> None:
    """CPU seconds per megapixel of hole on large holes, where the fixed cost of a call no
    longer dominates: the issue's case (a 330 x 300 px hole in the cat's fur, chelsea at
    twice its size) and a 500 x 500 px hole in grass tiled to 1024 x 1024; the median of
    ``repeats`` calls (one call's CPU time moves by a third with the host's load). Also
    the wall time of the call (what a person waits: below the CPU time where OpenCV or
    SciPy work on both cores, above it when the host is busy) and from the call to its
    first partial result (the window's first preview), medians of the same calls.
    Biharmonic is left out (a single sparse solve of tens of seconds at this size)."""
    from skimage import data as skdata

    from maskwork.operators import RunContext

    chelsea = np.ascontiguousarray(skdata.chelsea().repeat(2, axis=0).repeat(2, axis=1))
    fur = np.zeros(chelsea.shape[:2], bool)
    fur[260:560, 20:350] = True
    grass = np.ascontiguousarray(np.dstack([np.tile(skdata.grass(), (2, 2))] * 3))
    meadow = np.zeros(grass.shape[:2], bool)
    meadow[262:762, 262:762] = True
    print(f"\nLarge holes: CPU seconds of the call and per megapixel of hole, wall seconds (what a person "
          f"waits) per megapixel, and wall seconds to the first preview (medians of {repeats} calls)")
    for label, rgb, hole in (("chelsea x2, 330 x 300 px hole", chelsea, fur), ("grass 2x2 tiles, 500 x 500 px hole", grass, meadow)):
        megapixels = hole.sum() / 1e6
        cells = []
        for name, params in runs:
            seconds, walls, first = [], [], []
            for _ in range(repeats):
                arrivals = []
                start = time.perf_counter()
                ctx = RunContext(on_partial=lambda _result: arrivals.append(time.perf_counter() - start))
                seconds.append(timed_fill(spec, rgb, hole, name, params, ctx)[1])
                walls.append(time.perf_counter() - start)
                if arrivals:
                    first.append(arrivals[0])
            cpu_s, wall_s = statistics.median(seconds), statistics.median(walls)
            preview = f", first preview {statistics.median(first):.2f} s" if first else ""
            cells.append(f"{name} {cpu_s:.2f} s CPU = {cpu_s / megapixels:.1f} s/MP, wall {wall_s / megapixels:.1f} s/MP"
                         f"{preview}")
        print(f"  {label} ({megapixels:.3f} MP): " + "; ".join(cells), flush=True)


if __name__ == "__main__":
    sys.exit(main())
