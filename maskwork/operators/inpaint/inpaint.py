"""Inpainting: fill the pixels under a mask from the picture around them.

Four methods, one operator (``inpaint``), plus ``remove_object`` which grows an object's
mask by a few pixels first and passes its fill parameters on to ``inpaint`` (declared and
documented once, there). A method's own parameters are shown only while it is chosen:

- ``telea`` and ``navier_stokes``: OpenCV's diffusion methods (``cv2.inpaint``). 8-bit
  gray and RGB images go to OpenCV as they are (RGB as one 3-channel image, the alpha of
  RGBA as a second, 1-channel call). 16-bit, other integer and float images are inpainted
  channel by channel as 32-bit float, each channel mapped linearly onto 0..255 (the scale
  OpenCV's 8-bit path works on: Telea's weights are not scale-free) and back, so nothing
  is quantised to 8 bits.
- ``biharmonic``: scikit-image's ``inpaint_biharmonic`` (smooth, slow on big holes).
- ``exemplar`` (the default): ours, a patch-based fill in the manner of Wexler, Shechtman
  and Irani ("Space-time completion of video", 2007) with a PatchMatch search (Barnes et
  al. 2009), coarse to fine. By default every hole pixel is a copy of one known pixel (the
  best-matching patch covering it wins, nothing is averaged), and the seams between copied
  pieces are removed in the gradient domain (Poisson, as in "Image Melding", Darabi et al.
  2012), so fur, grass or gravel keep their grain and no colour step shows at the
  hole's edge. (Long straight structure, such as a window frame or a mortar joint across
  a large hole, is not always continued.) Details below.

Every method works on the bounding box of the hole plus a margin (OpenCV: the radius plus
8 pixels, which gives exactly the whole-image result; biharmonic: 8 pixels, the same
result except that scikit-image clips the fill to the range of the known pixels it is
given, here those of the box; exemplar: the ``context`` it may copy from), and separate
holes far apart are filled one region at a time, so a small hole in a 12-megapixel photo
costs what the hole costs. Pixels outside the mask are never changed. Non-finite pixels
(NaN, inf) near a hole are treated as unknown, so no fill copies them, but only the mask's
pixels are written. An empty mask raises ``InputError`` rather than returning the image
unchanged: in the window that is a message ("paint over what should be filled"), not a
silent Apply that adds an identical layer.

Exemplar method
---------------
1. Pyramid: the region is halved (masked area averaging, so hole pixels never leak into
   known ones; a coarse pixel touching the hole is a hole pixel) until the hole lies
   within 5 patch radii of its border, or the known part gets too small to copy from.
2. First guess on the coarsest level: onion peel. The hole is filled ring by ring from
   its border; every pixel of a ring takes the medoid of its values in the 5 known
   patches that best match its known and already-filled surroundings (Efros-Leung, a
   whole ring at once, exhaustive over up to 4000 patches with one matrix product per
   chunk; the value closest to the other four: a colour the picture has, where their
   mean is a mixture that the finer levels matched to flat sources, a piece of sky in a
   building's wall; and no outlier, as the best one can be: a star in a night sky copied
   in one ring is matched and grown by the next rings into a foreign object); or, where
   the copy at one of the picture's dominant offsets (below) matches as well as the 3rd
   best of them and lies within their spread, that copy, so that a lattice or a brick
   bond continues in step instead of breaking up. This coarsest level, upsampled, is the
   first preview (a few tenths of a second).
3. Each level runs expectation-maximisation rounds (Wexler, Shechtman and Irani): (a)
   PatchMatch (Barnes et al. 2009) improves the source of every patch overlapping the
   hole at once, in whole-array steps: on the levels above full resolution every patch
   first tries the picture's dominant offsets (below), propagation takes the shifted
   source of the patch 1 pixel away in each of the four directions, random search tries
   sources in windows halving from the level's size to one pixel (none at full
   resolution: the level above placed the matches); sources are patches lying wholly in
   the known part of the region; (b) every hole pixel takes its value in the
   best-matching patch covering it (whole shifted arrays, one comparison per offset), the
   distance divided by the patch's known fraction plus 0.03: a patch that straddles the
   hole's edge beats one that merely matches the fill copied before, so the fill follows
   the edge. Rounds: 3 on the coarsest level, 1 on each finer one. At full resolution
   only the patches at every second offset take part, and the same pass makes the
   averaged vote (as ``sharp=False`` does) for step 7.
4. Patch distances are squared differences of low-frequency DCT coefficients after an
   orthonormal opponent colour transform (a luminance and two chroma planes, decorrelated
   like Lab's; 10 luminance and 2 x 3 chroma coefficients for RGB), computed for every
   pixel with separable ``cv2.filter2D`` passes. One candidate for every target costs a
   gather of 16 numbers per patch, not of the 9x9x3 = 243 pixel values.
5. The matches and the filled image are upsampled to the next level, which starts from
   them; a level between the coarsest and full resolution starts from what the upsampled
   matches copy there (against the upsampled blur, thin structure such as mortar joints
   loses to sources at another phase). Each finished level is offered as a partial
   result, so the preview sharpens as it goes; ``draft`` stops early and upsamples.
6. Seams, at full resolution: where two neighbouring hole pixels were copied from pixels
   that are not neighbours (and across the hole's edge), the wanted difference between
   them is the mean of what each side's source continues with; elsewhere the copy's own
   difference. The fill that fits those differences with the known pixels fixed solves a
   Poisson equation, done for the correction with a fast sine transform on the hole's
   box (widened by a few known pixels to a length the transform is quick on). What
   little colour mismatch is left at the edge (non-rectangular holes) is
   smoothed along the edge and faded out over 1.5 patches inside it.
7. Low band: the fill's band below a Gaussian of 1 pixel is replaced by that of the
   averaged vote. The grain stays the copy's; where the sources disagree (random
   texture) the local mean is theirs, the pixel-wise closer guess, and where they agree
   (structure) nothing changes. Then each pixel's departure from its 5 x 5 median is
   clipped to the 99th percentile of those of the known pixels around the hole, so a
   star copied along with a coherent piece of sky leaves no speck (in textured
   surroundings that bound is the texture's own contrast). A fleck wider than a few
   pixels, which the median follows, is found against a smooth fill of the hole instead:
   pixels departing from it four times more than the known pixels next to the hole
   depart from their own blur (a piece of a tower copied into a plain sky) take that
   smooth fill, feathered.
8. Membrane: the band below a Gaussian of two patch radii moves towards that of the
   membrane fill (Laplace's equation with the hole's edge fixed, solved by multigrid),
   as far as the covering patches' sources disagree there compared with the texture's
   own variance beside the hole: where the copies are random draws of the texture, the
   smooth interpolation of the edge is the closer guess of the local mean; where they
   continue one structure (bricks, a fence) it does not move. The grain stays the copy's.
9. The edge once more: steps 7 and 8 gave the fill another low band than the copy step 6
   fitted to the hole's edge, so the differences across the edge are fitted again, each
   to what the hole pixel's source continues with there, every difference inside the
   hole kept as it now is (without it the fill's jump across the edge was 1.4 to 1.8
   times the photo's own there on four 120 px holes and the issue's 330 x 300 px one, a
   visible seam; now 0.7 to 1.0).

Dominant offsets (He and Sun, "Statistics of patch offsets for image completion", 2012):
the few translations under which the known part of the region repeats best (a fence's
lattice, brick courses, rows of windows), found for all translations at once as the
normalised cross-correlation of the luminance's detail by FFT. Tried as every patch's
source, they let copies continue such structure in step across the hole.

``sharp=False`` is the older, softer fill: every level (full resolution included) makes
each hole pixel the weighted mean of what the overlapping patches' sources hold there,
weights exp(-d / 2 sigma^2) with sigma^2 the 75th percentile of the patch distances, and
two texture features ride along with the colours (the local mean of |d/dx| and |d/dy| of
the luminance, Newson et al., IPOL 2017) so blurred coarse levels still ask for textured
sources. Averaging many plausible patches is the pixel-wise closest guess (about 1 dB
higher PSNR on random texture, where nothing can predict the real grain) but looks milky:
the grain of fur, grass or gravel is washed out.
"""

from __future__ import annotations

from typing import Annotated, Callable, Literal

import cv2
import numpy as np

from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.grid_laplacian import boundary_terms, restricted_laplacian
from maskwork.operators.refine.morphology import dilate
from maskwork.operators.registry import Display, Range, ShownFor, register
from maskwork.operators.seeds import check_image, check_mask, mask_pixels
from maskwork.operators.stoppable import call_stoppable

CATEGORY = "Inpaint"
Method = Literal["exemplar", "telea", "navier_stokes", "biharmonic"]

#: Pixels of known image around the hole that OpenCV's methods see beyond their radius.
OPENCV_MARGIN = 8
#: Pixels of known image around the hole that the biharmonic equation sees (it uses 2).
BIHARMONIC_MARGIN = 8
#: Largest hole (pixels) whose biharmonic solve runs in this process: about 0.2 s on a
#: loaded core. A larger one is a single sparse solve of seconds that cannot be split
#: without changing the fill, so it runs in a child process that Cancel ends.
BIHARMONIC_IN_PROCESS_PIXELS = 10_000
#: Largest automatic context (pixels) of the exemplar method around a hole's bounding box.
MAX_AUTO_CONTEXT = 512
#: Patch descriptor: DCT coefficients (u, v) with u + v up to this, luminance and chroma.
LUMA_FREQUENCIES, CHROMA_FREQUENCIES = 3, 1
#: Texture features: weight against the colours, DCT frequencies kept, averaging window.
TEXTURE_WEIGHT, TEXTURE_FREQUENCIES, TEXTURE_WINDOW = 1.0, 1, 5
#: Fewest whole known patches a pyramid level needs to be worth searching.
MIN_SOURCES = 64
#: The coarsest level is the first whose hole lies within this many patch radii of its border.
COARSEST_DEPTH = 5
#: Expectation-maximisation rounds: coarsest level, levels in between, full resolution.
ROUNDS_COARSEST, ROUNDS_MIDDLE, ROUNDS_FINEST = 3, 1, 1
#: PatchMatch iterations per round: coarsest level (random start), others, full resolution.
SEARCHES_COARSEST, SEARCHES_MIDDLE, SEARCHES_FINEST = 2, 1, 1
#: At full resolution only the patches at every second offset vote (4x fewer, same cover).
VOTE_STRIDE = 2
#: Width, in patches, of the band inside the hole's edge where the colour mismatch a
#: Poisson solve on the hole's box leaves at a non-rectangular edge is faded out.
EDGE_BAND = 1.5
#: Best-patch copies rank a patch by its distance / (this + the known fraction of its
#: pixels). A copied fill matches itself perfectly, so without it the patches wholly
#: inside the hole would always win and the fill would ignore the hole's edge (a
#: rectangle of foreign texture); with 0.03 a patch straddling the edge wins near it
#: (tuning photos: +0.3 dB PSNR, +0.02 SSIM; whiskers and stripes carry into the hole).
EDGE_PREFERENCE = 0.03
#: Sharp fills take the band below a Gaussian of this sigma (pixels) from the averaged
#: vote of the same matches: the copy's grain stays, but where the sources disagree the
#: fill's local mean is theirs, not one source's (tuning photos +0.12 dB, SSIM +0.01,
#: detail 0.63 -> 0.56; it replaces a mean-shift step on the copy that gained 0.01 dB).
LOW_BAND_SIGMA = 1.0
#: Sharp fills: each hole pixel's departure from its 5 x 5 median is clipped to this
#: quantile of the departures of the known pixels around the hole (a star or a fleck of a
#: tower copied along into a plain sky; tuning photos unchanged, their fills' contrast is
#: their surroundings').
SPECK_QUANTILE = 0.99
#: Sharp fills: a hole pixel departing from a smooth fill of the hole (normalised
#: convolution, then a Gaussian of FOREIGN_SIGMA pixels) by more than FOREIGN_FACTOR times
#: the SPECK_QUANTILE of the known pixels' departures from their own Gaussian, within
#: FOREIGN_RING patches of the hole, is part of a foreign object: it and FOREIGN_GROW
#: pixels around it (feathered) take the smooth fill. A coherent copy can bring a piece
#: of an object along (a fleck of a launch tower in a plain sky), which the 5 x 5 median
#: of clip_specks follows. Chosen so that no fill of the tuning photos changes (factors 3
#: to 6 all leave them bit for bit: 16.84 dB; clipping the departure instead of replacing
#: it flattened fur, chelsea's 96 px hole kept 0.60 of its detail instead of 0.76); on
#: the reporting photos it changes one fill, rocket's sky fleck, 29.5 -> 41.6 dB.
FOREIGN_SIGMA = 8.0
FOREIGN_RING = 0.5
FOREIGN_FACTOR = 4.0
FOREIGN_GROW = 4
#: Sharp fills, last: the fill's band below a Gaussian of MEMBRANE_RADII patch radii moves
#: towards that of the membrane (harmonic) interpolation of the hole's edge, as far as the
#: covering patches' sources disagree there, relative to the texture's own variance next
#: to the hole: all the way where their variance reaches MEMBRANE_DISAGREEMENT of the
#: texture's, not at all where they continue one structure. Two guesses of the local mean
#: that fail differently: random sources' mean is one draw's, the edge's colours are the
#: pixel-wise best guess there; a brick bond or a fence is what the copies predict.
#: Chosen on the tuning photos as the largest gain in PSNR that keeps the fill's
#: mid-scale contrast (a 1.5 - 6 px band, fur stripes and leaf shapes) within 5 % of the
#: copies': +0.13 dB, contrast 0.60 -> 0.58 of the photo's. One patch radius gained 0.17
#: to 0.21 dB but flattened the cat's fur and the leaves to 0.51 - 0.54 (as milky as the
#: averaged vote, 0.54); moving every fill all the way cost a brick wall 3 dB.
MEMBRANE_RADII, MEMBRANE_DISAGREEMENT = 2.0, 0.5
#: Membrane fill (multigrid): a hole of at most this many pixels is solved directly; a
#: larger one by MEMBRANE_CYCLES V-cycles of MEMBRANE_SWEEPS red-black sweeps over-relaxed
#: by MEMBRANE_RELAXATION before and after each coarse-grid correction.
MEMBRANE_DIRECT_PIXELS = 1024
MEMBRANE_CYCLES, MEMBRANE_SWEEPS, MEMBRANE_RELAXATION = 3, 2, 1.5
#: Averaged votes (sharp=False): weights exp(-d / 2 sigma^2), sigma^2 this percentile of
#: the distances.
SIGMA_PERCENTILE = 75
#: PatchMatch propagation: copy the shifted source of the target this far away (jumps
#: of 2 and 4 as well cost a third of the search and changed nothing measurable: tuning
#: photos 16.84 dB with them, 16.84-16.90 without).
PROPAGATION_JUMPS = (1,)
#: Dominant offsets (He and Sun 2012): how many translations of the known picture onto
#: itself every patch tries as its source on the levels above full resolution (tuning
#: photos +0.07 dB; brick courses and fence wires keep in step), the largest side
#: (pixels) of the picture they are measured on (larger crops are halved until it fits),
#: and the least share of the known pixels that must overlap under a translation.
OFFSET_COUNT, OFFSET_SIDE, OFFSET_OVERLAP = 8, 256, 0.5
#: Onion-peel first guess: most and fewest source patches, front pixels per matrix
#: product, and the work budget (hole pixels x sources x patch values).
ONION_SOURCES, ONION_MIN_SOURCES, ONION_CHUNK, ONION_WORK = 4000, 400, 256, 4e8
#: Onion peel: each pixel is the medoid of what this many best-matching sources hold there,
#: or a copy at a dominant offset whose patch matches at least as well as the
#: ONION_OFFSET_RANK-th best of them and whose squared distance to their mean is at most
#: ONION_OFFSET_REACH times that of the farthest of them (tuning photos: +0.13 dB, SSIM
#: +0.014; the chain-link fence's wires and bar continue through a person-shaped hole
#: that was a flat mass; the 5th rank let a bench and a piece of the dog beside it grow
#: into the field, the 1st scored 0.03 dB less; the reach stops that growth at the same
#: PSNR; all measured when each pixel took the candidates' mean, not their medoid).
ONION_CANDIDATES, ONION_OFFSET_RANK, ONION_OFFSET_REACH = 5, 3, 2.0


@register("inpaint", title="Inpaint", category=CATEGORY, outputs=("image",))
def inpaint(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    method: Method = "exemplar",
    radius: Annotated[int, Range(1, 50), ShownFor("method", "telea", "navier_stokes")] = 5,
    patch_size: Annotated[int, Range(3, 31), ShownFor("method", "exemplar")] = 9,
    sharp: Annotated[bool, ShownFor("method", "exemplar")] = True,
    context: Annotated[int, Range(0, 4000), ShownFor("method", "exemplar"), Display(unit="px", special="automatic")] = 0,
    draft: Annotated[int, Range(0, 4), Display("Draft halvings", special="none (full quality)")] = 0,
    ctx: RunContext | None = None,
) -> Result:
    """Fill the pixels under a mask from the picture around them.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image, (row, col[, channel]); 8-bit, 16-bit or float. The result
        has the same shape and type.
    mask : ndarray
        Mask or labels layer of the image's size: nonzero pixels are filled, all others
        are kept exactly as they are. An empty mask is an error (there is nothing to
        fill), as is one covering the whole image (nothing to fill from).
    method : {"exemplar", "telea", "navier_stokes", "biharmonic"}
        "exemplar" (the default) copies patches from the rest of the picture (best for
        large holes and any texture); "telea" (fast marching) and "navier_stokes" (fluid dynamics) are OpenCV's
        quick diffusion fills for scratches and small specks; "biharmonic" is a smooth
        fill (scikit-image), good on smooth gradients and slow on big holes.
    radius : int
        Telea and Navier-Stokes: neighbourhood in pixels each filled pixel is computed
        from.
    patch_size : int
        Exemplar: side of the square patches copied, in pixels (even sizes are rounded up
        to odd). Larger patches keep larger structures together; smaller ones fit fine
        texture and narrow gaps.
    sharp : bool
        Exemplar: copy texture crisply (the default): every hole pixel is copied from the
        best-matching patch covering it and the seams between copies are removed, so
        grass, gravel or fur look like themselves. False averages the matching patches
        instead: a little closer to the true content pixel by pixel (higher PSNR) but
        milky, the texture's grain washed out.
    context : int
        Exemplar: pixels around the hole's bounding box that patches may be copied from;
        0 chooses it from the hole's size (at least 4 patches, at most 512 pixels).
    draft : int
        Work this many halvings below full resolution and upsample the fill: 1 or 2 give
        a quick, softer preview of a large hole; 0 is full quality. (Exemplar: at most as
        many halvings as its pyramid has; a small hole has none to skip.)
    ctx : RunContext, optional
        Progress, partial results (each finished pyramid level) and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the filled image, same shape and dtype as ``image``.
    """
    ctx = ctx or null_context()
    ctx.check()
    img = _check_input_image(image)
    fill = mask_pixels(check_mask(mask, img))
    return _run(image, img, fill, method, radius, patch_size, sharp, context, draft, ctx)


@register("remove_object", title="Remove object", category=CATEGORY, outputs=("image",), parameters_from=inpaint)
def remove_object(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    grow: Annotated[int, Range(0, 200)] = 5,
    ctx: RunContext | None = None,
    **fill,
) -> Result:
    """Remove an object: grow its mask by a few pixels, then inpaint what it covered.

    Parameters
    ----------
    image : ndarray
        The picture to remove the object from, any image :func:`inpaint` takes; the
        result has its shape and type.
    mask : ndarray
        Mask or segmentation (labels) layer of the image's size: nonzero pixels are the
        object to remove. An empty mask is an error.
    grow : int
        Pixels the object's mask grows by (exact disc) before filling, so its soft edge,
        halo and shadow seam go too.
    ctx : RunContext, optional
        Progress, partial results and cancellation.
    **fill
        :func:`inpaint`'s parameters (``method``, ``radius``, ``patch_size``, ``sharp``,
        ``context``, ``draft``), declared and documented there; the registry lists them
        for this operator too.

    Returns
    -------
    Result
        ``outputs["image"]``: the image without the object, same shape and dtype.
    """
    ctx = ctx or null_context()
    ctx.check()
    hole = mask_pixels(check_mask(mask, _check_input_image(image)))
    if grow > 0:
        ctx.progress(0.0, f"Growing the object's mask by {grow} px")
        hole = dilate(hole, int(grow))
    return inpaint(image, hole, ctx=ctx, **fill)


# ------------------------------------------------------------------------------ driver


def _run(original, img, fill, method, radius, patch_size, sharp, context, draft, ctx) -> Result:
    """Fill ``fill`` in ``img`` region by region; the result has ``original``'s shape."""
    if method not in ("exemplar", "telea", "navier_stokes", "biharmonic"):
        raise InputError(f"unknown method {method!r}; use exemplar, telea, navier_stokes or biharmonic")
    if not fill.any():
        raise InputError("the mask is empty: paint over what should be filled")
    out = np.array(img, copy=True)
    squeeze = out.ndim == 2
    out3 = out[..., None] if squeeze else out
    unknown = fill.copy()
    floating = np.issubdtype(img.dtype, np.floating)
    if floating:
        # NaN / inf outside the mask: never copied from, filled in the working copy only.
        unknown |= ~np.isfinite(out3).all(axis=2)
    if unknown.all():
        raise InputError("the mask covers the whole image: nothing is left to fill from")
    patch_size = int(patch_size) | 1

    if method == "exemplar":
        margin = int(context) if context > 0 else _auto_context(fill, patch_size)
    elif method == "biharmonic":
        margin = BIHARMONIC_MARGIN
    else:
        margin = int(radius) + OPENCV_MARGIN
    regions = _regions(fill, margin)

    sizes = [int(np.count_nonzero(unknown[r])) for r in regions]
    done = 0
    total = float(sum(sizes))
    iterations = 0
    levels_used = 0
    bounds = _union(regions)
    for region, size in zip(regions, sizes):
        hole = unknown[region].copy()
        if not hole.any():  # already filled as part of an overlapping region
            continue
        crop = out3[region].astype(np.float32)
        if floating:
            crop[hole] = 0.0  # whatever the hole held (NaN included) is not used
        start, span = done / total, size / total

        def report(fraction: float, message: str, start=start, span=span) -> None:
            ctx.progress(start + span * fraction, f"Inpaint: {message}")

        def offer(filled_crop: Callable[[], np.ndarray], region=region, hole=hole) -> None:
            """Show ``filled_crop()`` as a partial result (made only when someone looks)."""
            if ctx.wants_partials:
                preview = out3.copy()
                _paste(preview, region, filled_crop(), hole & fill[region])
                ctx.partial(Result({"image": preview[..., 0] if squeeze else preview}, bounds=bounds))
            else:
                ctx.check()

        report(0.0, f"{_METHOD_NAMES[method]} on {hole.shape[1]}x{hole.shape[0]} px")
        if method == "exemplar":
            # Around the known pixels' mean: patch differences and the fill do not change,
            # and float32 keeps its precision for 16-bit values far from 0 (at 60,000 the
            # sources' spread came out twice that at 1,000 with another OpenCV's rounding).
            centre = _known_mean(crop, hole)
            filled, rounds, levels = _exemplar(crop - centre, hole, patch_size, draft, bool(sharp), report,
                                               lambda filled_crop, offer=offer, centre=centre: offer(
                                                   lambda: filled_crop() + centre), ctx)
            filled = filled + centre
            iterations += rounds
            levels_used = max(levels_used, levels)
        else:
            filled = _diffusion(crop, hole, method, radius, draft, img.dtype, ctx)
            iterations += 1
        ctx.check()
        _paste(out3, region, filled, hole & fill[region])
        # Filled mask pixels count as known for any later region that overlaps this one.
        unknown[region] &= ~(hole & fill[region])
        done += size
    ctx.progress(1.0, "Inpaint: done")
    result_image = out3[..., 0] if squeeze else out3
    result_image = result_image.reshape(np.shape(original)) if np.ndim(original) == 3 and squeeze else result_image
    scores = {"hole_pixels": float(np.count_nonzero(fill)), "regions": float(len(regions))}
    if method == "exemplar":
        scores["levels"] = float(levels_used)
    return Result({"image": result_image}, iterations=iterations, scores=scores, bounds=bounds)


_METHOD_NAMES = {
    "exemplar": "exemplar fill",
    "telea": "Telea",
    "navier_stokes": "Navier-Stokes",
    "biharmonic": "biharmonic",
}


def _check_input_image(image) -> np.ndarray:
    img = check_image(image)
    if img.dtype == bool or not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)):
        raise InputError(f"inpainting needs a numeric image, got {img.dtype}")
    return img


def _auto_context(fill: np.ndarray, patch_size: int) -> int:
    """Context margin: the largest hole's extent, at least 4 patches, at most 512 px."""
    count, _, stats, _ = cv2.connectedComponentsWithStats(fill.astype(np.uint8), connectivity=8)
    extent = int(stats[1:, cv2.CC_STAT_WIDTH:cv2.CC_STAT_HEIGHT + 1].max()) if count > 1 else 0
    return int(max(4 * patch_size, min(extent, MAX_AUTO_CONTEXT)))


def _regions(fill: np.ndarray, margin: int) -> list[tuple[slice, slice]]:
    """Boxes (hole's bounding box plus ``margin``) of groups of holes closer than 2 margins.

    Holes whose margins touch share one box, so each box is filled once; boxes of
    different groups may still overlap, which the driver handles by filling them in
    turn.
    """
    rows, cols = fill.shape
    # Within ``margin`` of a hole in the chessboard metric = dilated by a square of side
    # 2 margin + 1, in time independent of the margin (a 500 px margin dilation is 0.2 s).
    chessboard = cv2.distanceTransform((~fill).astype(np.uint8), cv2.DIST_C, 3)
    grown = (chessboard <= margin).astype(np.uint8)
    count, _, stats, _ = cv2.connectedComponentsWithStats(grown, connectivity=8)
    regions = []
    for i in range(1, count):
        x, y, w, h = (int(v) for v in stats[i, :4])
        regions.append((slice(max(0, y), min(rows, y + h)), slice(max(0, x), min(cols, x + w))))
    regions.sort(key=lambda r: (r[0].start, r[1].start))
    return regions


def _union(regions) -> tuple[slice, slice]:
    return (
        slice(min(r[0].start for r in regions), max(r[0].stop for r in regions)),
        slice(min(r[1].start for r in regions), max(r[1].stop for r in regions)),
    )


def _paste(out3: np.ndarray, region, filled: np.ndarray, where: np.ndarray) -> None:
    """Write ``filled`` (float, region-sized) into ``out3[region]`` at ``where``, cast back."""
    values = filled[where]
    dtype = out3.dtype
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        values = np.clip(np.rint(values), info.min, info.max)
    out3[region][where] = values.astype(dtype)


# ------------------------------------------------------------------------------ diffusion


def _diffusion(crop, hole, method, radius, draft, dtype, ctx: RunContext) -> np.ndarray:
    """Telea, Navier-Stokes or biharmonic on a float32 (rows, cols, channels) crop."""
    if draft > 0:
        small, small_hole = crop, hole
        for _ in range(draft):
            if min(small_hole.shape) < 8:
                break
            smaller, smaller_hole = _downsample(small, small_hole)
            if smaller_hole.all():  # nothing known left to fill from at that scale
                break
            small, small_hole = smaller, smaller_hole
        if small_hole.shape != hole.shape:
            filled_small = _diffusion(small, small_hole, method, radius, 0, np.float32, ctx)
            up = _resize(filled_small, hole.shape, cv2.INTER_LINEAR)
            out = crop.copy()
            out[hole] = up[hole]
            return out
    if method == "biharmonic":
        from skimage.restoration import inpaint_biharmonic

        lo, scale = _known_range(crop, hole)
        scaled = ((crop - lo) / scale).astype(np.float64)
        if np.count_nonzero(hole) > BIHARMONIC_IN_PROCESS_PIXELS:
            result = call_stoppable(ctx, inpaint_biharmonic, scaled, hole, split_into_regions=True, channel_axis=-1)
        else:
            result = inpaint_biharmonic(scaled, hole, split_into_regions=True, channel_axis=-1)
        return (result * scale + lo).astype(np.float32).reshape(crop.shape)
    flag = cv2.INPAINT_TELEA if method == "telea" else cv2.INPAINT_NS
    hole8 = hole.astype(np.uint8)
    out = np.empty_like(crop)
    channels = crop.shape[2]
    if dtype == np.uint8:
        # Exact 8-bit values: OpenCV's own 8-bit path, RGB as one colour image.
        as8 = crop.astype(np.uint8)
        if channels >= 3:
            out[..., :3] = cv2.inpaint(np.ascontiguousarray(as8[..., :3]), hole8, float(radius), flag)
        for c in range(3 if channels >= 3 else 0, channels):
            out[..., c] = cv2.inpaint(np.ascontiguousarray(as8[..., c]), hole8, float(radius), flag)
        return out
    for c in range(channels):
        channel = crop[..., c]
        lo, scale = _known_range(channel[..., None], hole)
        scaled = np.ascontiguousarray((channel - lo) * (255.0 / scale), np.float32)
        filled = cv2.inpaint(scaled, hole8, float(radius), flag)
        out[..., c] = filled * (scale / 255.0) + lo
    return out


def _known_mean(crop: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(channels,) float32 mean of the crop's finite pixels outside ``hole``."""
    values = crop[~hole].astype(np.float64)
    return np.nan_to_num(np.nanmean(np.where(np.isfinite(values), values, np.nan), axis=0)).astype(np.float32)


def _known_range(crop: np.ndarray, hole: np.ndarray) -> tuple[float, float]:
    """(low, span) of the known pixels, span never 0."""
    known = crop[~hole]
    if known.size == 0:
        return 0.0, 1.0
    lo, hi = float(known.min()), float(known.max())
    return lo, (hi - lo) if hi > lo else 1.0


# ------------------------------------------------------------------------------ exemplar


def _exemplar(crop, hole, patch, draft, sharp, report, offer, ctx: RunContext):
    """Patch-based fill of ``hole`` in a float32 (rows, cols, channels) crop.

    Returns
    -------
    filled : ndarray
        The crop's size; its hole pixels hold the fill (the others are not used).
    rounds : int
        Expectation-maximisation rounds run over all levels.
    levels : int
        Pyramid levels used.
    """
    radius = patch // 2
    colour = crop.shape[2]
    work = crop
    if not sharp:
        # Averaged votes blur the coarse levels; the texture features keep asking for
        # textured sources there. Copies stay sharp without them, and with them prefer
        # busier sources than the surroundings (rough fur pasted into soft fur).
        work = np.concatenate([crop, TEXTURE_WEIGHT * _texture_features(crop, hole)], axis=2)
    pyramid = _pyramid(work, hole, patch)
    if pyramid is None:
        raise InputError(
            f"too little intact picture around the hole for {patch}x{patch} patches: "
            "use a smaller patch size, a larger context or a diffusion method"
        )
    n_levels = len(pyramid)
    stop = min(int(draft), n_levels - 1)
    rng = np.random.default_rng(0)
    offsets = _dominant_offsets(crop[..., :colour], hole, patch)
    # Work per level, for progress: targets x rounds.
    plan = []
    for index in range(n_levels - 1, stop - 1, -1):
        rounds = ROUNDS_COARSEST if index == n_levels - 1 else ROUNDS_FINEST if index == stop else ROUNDS_MIDDLE
        plan.append((index, rounds))
    weights = np.array([np.count_nonzero(pyramid[i][1]) * r for i, r in plan], float)
    weights = np.cumsum(weights / weights.sum())
    current = None
    nnf = None
    total_rounds = 0
    for step, (index, rounds) in enumerate(plan):
        image, level_hole = pyramid[index]
        begin = weights[step - 1] if step else 0.0
        span = weights[step] - begin
        level = _Level(image, level_hole, radius, rng, colour, ctx)
        if current is None:
            level.image[level_hole] = _onion_fill(image, level_hole, radius, rng, ctx, offsets / 2**index)[level_hole]
            level.random_matches()
        else:
            level.image[level_hole] = _resize(current, level_hole.shape, cv2.INTER_LINEAR)[level_hole]
            level.upsample_matches(*nnf)
            if sharp and index != stop:
                # Start from what the upsampled matches copy at this scale, not from the
                # upsampled (blurred) fill: matched against the blur, thin structure the
                # coarser level placed (mortar joints, a fence's wires) loses to sources
                # of the same local mean at another phase, and a large brick fill comes
                # out with displaced joints. (At full resolution the round's own copy
                # follows at once.)
                level.search(iterations=0)
                level.copy_best()
        name = "full resolution" if index == 0 else f"1/{2 ** index} scale"
        finest = index == stop
        searches = SEARCHES_COARSEST if current is None else SEARCHES_FINEST if finest else SEARCHES_MIDDLE
        for r in range(rounds):
            report(begin + span * r / rounds, f"exemplar fill at {name}, round {r + 1} of {rounds}")
            if finest and current is not None:
                # The level above placed the matches: propagation alone refines them
                # (a random search there costs 10% more time and gains nothing measurable).
                level.search(iterations=searches, window=0)
            else:
                level.search(iterations=searches, offsets=offsets / 2**index)
            if sharp and finest:
                level.copy_best(stride=VOTE_STRIDE, average=True)
            elif sharp:
                level.copy_best()
            else:
                level.vote(stride=VOTE_STRIDE if finest else 1)
            total_rounds += 1
            if finest and r + 1 < rounds:
                offer(lambda: _at_crop_size(level.image[..., :colour], crop))
        if finest and sharp:
            level.harmonise(EDGE_BAND * patch)
            level.average_low_band(LOW_BAND_SIGMA)
            level.clip_specks(SPECK_QUANTILE)
            level.remove_foreign_objects(SPECK_QUANTILE, FOREIGN_SIGMA, FOREIGN_RING, FOREIGN_FACTOR, FOREIGN_GROW)
            level.blend_membrane_low_band(MEMBRANE_RADII * radius)
            # The low band now is the averaged vote's and the membrane's, not the copy's
            # that the first harmonise fitted to the edge: without this a band along the
            # edge kept the vote's colour, a visible step (module docstring, step 9).
            # (Taking the low band before the seam removal, or moving the averaged vote
            # by the same Poisson correction, also removed the step but left the rocket
            # photo's removed tower fleck as a smudge in its sky.)
            level.harmonise(EDGE_BAND * patch, edge_only=True)
        current = level.image
        nnf = level.matches()
        if step + 1 < len(plan):
            offer(lambda: _at_crop_size(current[..., :colour], crop))
    return _at_crop_size(current[..., :colour], crop), total_rounds, n_levels - stop


def _at_crop_size(level_image: np.ndarray, crop: np.ndarray) -> np.ndarray:
    """``level_image`` at the crop's size (upsampled when coarser).

    Only its hole pixels are ever pasted, so the known pixels of a coarse level are left
    as they come out of the upsampling rather than copied back from the crop (on a
    4-megapixel crop that copy alone was a fifth of the time to the first preview).
    """
    if level_image.shape[:2] != crop.shape[:2]:
        return _resize(level_image, crop.shape[:2], cv2.INTER_LINEAR)
    return level_image


def _pyramid(crop, hole, patch):
    """[(image, hole), ...] finest first; None when even the finest has no whole known patch."""
    radius = patch // 2
    if _valid_sources(hole, radius).sum() < 1:
        return None
    levels = [(crop, hole)]  # read only: each level's work starts from a copy
    while True:
        image, level_hole = levels[-1]
        depth = cv2.distanceTransform(level_hole.astype(np.uint8), cv2.DIST_L2, 3).max()
        if depth <= COARSEST_DEPTH * radius or min(level_hole.shape) < 4 * patch:
            break
        small, small_hole = _downsample(image, level_hole)
        if _valid_sources(small_hole, radius).sum() < MIN_SOURCES:
            break
        levels.append((small, small_hole))
    return levels


def _downsample(image: np.ndarray, hole: np.ndarray):
    """Halve ``image`` averaging only known pixels; a coarse pixel touching the hole is hole."""
    rows, cols = hole.shape
    size = ((cols + 1) // 2, (rows + 1) // 2)
    known = (~hole).astype(np.float32)
    num = _resize(image * known[..., None], (size[1], size[0]), cv2.INTER_AREA)
    den = cv2.resize(known, size, interpolation=cv2.INTER_AREA)
    small_hole = den < 0.999
    small = num / np.maximum(den, 1e-6)[..., None]
    small[small_hole] = 0.0
    return small.astype(np.float32), small_hole


def _resize(image: np.ndarray, shape: tuple[int, int], interpolation: int) -> np.ndarray:
    """(rows, cols, channels) image resized to ``shape``, any number of channels.

    OpenCV's area resize takes at most 4 channels; the exemplar fill carries colour plus
    texture features (up to 6), so larger stacks go through in slices.
    """
    size = (shape[1], shape[0])
    channels = image.shape[2]
    parts = [
        cv2.resize(np.ascontiguousarray(image[..., c : c + 4]), size, interpolation=interpolation).reshape(
            shape[0], shape[1], -1
        )
        for c in range(0, channels, 4)
    ]
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def _valid_sources(hole: np.ndarray, radius: int) -> np.ndarray:
    """Centres of patches lying wholly inside the crop and wholly outside the hole."""
    rows, cols = hole.shape
    valid = np.zeros(hole.shape, bool)
    if rows <= 2 * radius or cols <= 2 * radius:
        return valid
    size = 2 * radius + 1
    touches = cv2.dilate(hole.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    valid[radius : rows - radius, radius : cols - radius] = ~touches[radius : rows - radius, radius : cols - radius]
    return valid


def _dominant_offsets(crop: np.ndarray, hole: np.ndarray, patch: int) -> np.ndarray:
    """(k, 2) translations (rows, cols) under which the known picture repeats best.

    He and Sun ("Statistics of patch offsets for image completion", 2012): copies
    shifted by one of a picture's few dominant offsets continue its regular structure (a
    fence's lattice, brick courses, window rows) in step. Measured as the normalised
    cross-correlation of the luminance less its local mean (structure, not brightness),
    over the known pixels that overlap, for every translation at once by FFT; the best
    local maxima outside the patch-sized valley around no shift, with at least
    ``OFFSET_OVERLAP`` of the known pixels overlapping, are kept.
    """
    from scipy.fft import irfft2, rfft2

    luminance = crop.mean(axis=2)
    known = (~hole).astype(np.float32)
    scale = 1
    while max(hole.shape) > OFFSET_SIDE * scale:
        scale *= 2
    if scale > 1:
        size = (-(-hole.shape[1] // scale), -(-hole.shape[0] // scale))
        share = cv2.resize(known, size, interpolation=cv2.INTER_AREA)
        luminance = cv2.resize(luminance * known, size, interpolation=cv2.INTER_AREA) / np.maximum(share, 1e-6)
        known = (share > 0.999).astype(np.float32)
    sigma = max(1.0, patch / scale)
    detail = ((luminance - _known_blur(luminance, known, sigma)) * known).astype(np.float32)
    rows, cols = known.shape
    shape = (2 * rows, 2 * cols)  # zero-padded: translations, not rotations

    def correlate(a, b):
        """sum over x of a(x) b(x + d), for every d; d = 0 at the centre."""
        return np.fft.fftshift(irfft2(np.conj(a) * b, shape))

    spectra = [rfft2(a, shape) for a in (known, detail, detail * detail)]
    overlap = correlate(spectra[0], spectra[0])
    energy = correlate(spectra[2], spectra[0]) * correlate(spectra[0], spectra[2])
    score = correlate(spectra[1], spectra[1]) / np.sqrt(np.maximum(energy, 1e-6))
    dy, dx = np.mgrid[-rows:rows, -cols:cols]
    score = np.where(overlap >= OFFSET_OVERLAP * known.sum(), score, -np.inf).astype(np.float32)
    valley = (np.abs(dy) * scale < patch) & (np.abs(dx) * scale < patch)
    score[valley] = np.inf  # a shift of a few pixels always matches: its rim is no peak
    peaks = np.isfinite(score) & (score >= cv2.dilate(score, np.ones((5, 5), np.uint8)))
    ys, xs = np.nonzero(peaks)
    best = np.argsort(-score[ys, xs])[:OFFSET_COUNT]
    return np.stack([dy[ys[best], xs[best]], dx[ys[best], xs[best]]], axis=1).astype(np.float32) * scale


def _onion_fill(image, hole, radius, rng, ctx, offsets: np.ndarray) -> np.ndarray:
    """First guess on the coarsest level: fill the hole layer by layer from its border.

    Each pixel of the current border layer takes the medoid of its values in the
    ``ONION_CANDIDATES`` known patches whose known (or already filled) pixels best match
    its surroundings (Efros-Leung texture synthesis, one layer at a time and all its
    pixels at once), searched exhaustively over up to ``ONION_SOURCES`` whole known
    patches, or its copy at one of the ``offsets`` (k, 2; the picture's dominant
    offsets at this level's scale) where that matches as well and holds a value close
    enough to theirs (:func:`_offset_copies`).
    """
    rows, cols, channels = image.shape
    size = 2 * radius + 1
    out = image.copy()
    valid = _valid_sources(hole, radius)
    sources = np.flatnonzero(valid)
    # Bound the work: every hole pixel is compared with every source patch once.
    work = np.count_nonzero(hole) * size * size * channels
    budget = int(np.clip(ONION_WORK // max(work, 1), ONION_MIN_SOURCES, ONION_SOURCES))
    if sources.size > budget:
        sources = rng.choice(sources, budget, replace=False)
    sy, sx = np.divmod(sources, cols)
    shifts = np.rint(offsets).astype(int)
    dy, dx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    dy, dx = dy.ravel(), dx.ravel()
    source_patches = out[sy[:, None] + dy, sx[:, None] + dx].reshape(sources.size, -1)  # (S, P*C)
    source_squares = (source_patches.reshape(sources.size, size * size, channels) ** 2).sum(axis=2)  # (S, P)
    filled = ~hole
    ring = np.ones((3, 3), np.uint8)
    while not filled.all():
        ctx.check()
        grown = cv2.dilate(filled.astype(np.uint8), ring).astype(bool)
        front_y, front_x = np.nonzero(grown & ~filled)
        if front_y.size == 0:  # cannot happen while some pixel is known; be safe
            return _smooth_fill(out, ~filled)
        # Patch centres clamped inside the image; the pixel sits at its offset in the patch.
        cy = np.clip(front_y, radius, rows - radius - 1)
        cx = np.clip(front_x, radius, cols - radius - 1)
        at = (front_y - cy + radius) * size + (front_x - cx + radius)
        for chunk in range(0, front_y.size, ONION_CHUNK):
            part = slice(chunk, chunk + ONION_CHUNK)
            py, px = cy[part, None] + dy, cx[part, None] + dx
            known = filled[py, px].astype(np.float32)  # (F, P)
            target = out[py, px]  # (F, P, C)
            weighted = (target * known[..., None]).reshape(len(known), -1)
            distance = (
                (known[..., None] * target**2).sum(axis=(1, 2))[:, None]
                - 2.0 * weighted @ source_patches.T
                + known @ source_squares.T
            ) / np.maximum(known.sum(axis=1), 1.0)[:, None]
            # The medoid of the few best sources' pixels (the one closest to the
            # others): a colour the picture has, not their mean, a mixture that the
            # finer levels matched to flat sources (a piece of sky copied into a
            # building's wall); and not the best one's, which may be an outlier (a star
            # in a night sky) that the next rings would match and grow into a foreign
            # object.
            count = min(ONION_CANDIDATES, sources.size)
            best = np.argpartition(distance, count - 1, axis=1)[:, :count]
            values = source_patches.reshape(sources.size, size * size, channels)[best, at[part][:, None]]
            fy, fx = front_y[part], front_x[part]
            gaps = ((values[:, :, None] - values[:, None]) ** 2).sum(axis=(2, 3))  # (front, count)
            out[fy, fx] = values[np.arange(len(values)), gaps.argmin(axis=1)]
            mean = values.mean(axis=1)
            if shifts.size:
                # A copy at one of the picture's dominant offsets instead, where the
                # shifted patch matches this one's known and filled pixels as well as
                # the ONION_OFFSET_RANK-th best sampled source: a lattice or a brick
                # bond continues in step ring after ring, where sources at different
                # phases break it up (their mean was a flat blur that the later levels
                # matched and kept).
                # Every other row and column of the patch: a quarter of the gathers,
                # the same choice to within noise.
                sparse = ((dy - dy[0]) % 2 == 0) & ((dx - dx[0]) % 2 == 0)
                shifted, from_y, from_x = _offset_copies(
                    out, filled, target[:, sparse], known[:, sparse], cy[part], cx[part], fy, fx, shifts,
                    dy[sparse], dx[sparse],
                )
                rank = min(ONION_OFFSET_RANK, count) - 1
                take = shifted <= np.partition(distance, rank, axis=1)[:, rank]
                # ... and only where the copy is a value the best sources could hold: a
                # neighbour's structure repeated into plain ground or sky (a bench grown
                # into the field beside it) is not.
                spread = ((values - mean[:, None]) ** 2).sum(axis=2).max(axis=1)
                take &= ((out[from_y, from_x] - mean) ** 2).sum(axis=1) <= ONION_OFFSET_REACH * spread
                out[fy[take], fx[take]] = out[from_y[take], from_x[take]]
        filled[front_y, front_x] = True
    return out


def _offset_copies(out, filled, target, known, cy, cx, fy, fx, shifts, dy, dx):
    """The best copy of each front pixel (fy, fx) at one of the ``shifts`` (k, 2).

    The pixel's patch is centred at (cy, cx), its pixels at (dy, dx) from there. Returns
    the copy's distance (the mean squared difference over the pixels known in the target
    patch and filled in the shifted one; inf where no shift is usable: the pixel copied
    is not filled yet, or the shifted patch sees less than half of what is known around
    the target) and the row and column copied from (clipped into the image: where the
    distance is inf they are only stand-ins).
    """
    rows, cols = filled.shape
    sy = cy[:, None, None] + shifts[None, :, 0, None] + dy  # (front, shifts, patch)
    sx = cx[:, None, None] + shifts[None, :, 1, None] + dx
    inside = (sy >= 0) & (sy < rows) & (sx >= 0) & (sx < cols)
    sy, sx = np.clip(sy, 0, rows - 1), np.clip(sx, 0, cols - 1)
    both = known[:, None, :] * (filled[sy, sx] & inside)
    overlap = both.sum(axis=2)
    distance = (both * ((out[sy, sx] - target[:, None]) ** 2).sum(axis=3)).sum(axis=2) / np.maximum(overlap, 1.0)
    from_y, from_x = fy[:, None] + shifts[:, 0], fx[:, None] + shifts[:, 1]
    copyable = (from_y >= 0) & (from_y < rows) & (from_x >= 0) & (from_x < cols)
    copyable[copyable] = filled[from_y[copyable], from_x[copyable]]
    distance[~copyable | (overlap < 0.5 * known.sum(axis=1)[:, None])] = np.inf
    pick = distance.argmin(axis=1)
    front = np.arange(len(fy))
    return distance[front, pick], np.clip(from_y[front, pick], 0, rows - 1), np.clip(from_x[front, pick], 0, cols - 1)


def _known_blur(values: np.ndarray, known: np.ndarray, sigma: float) -> np.ndarray:
    """The Gaussian blur of ``values`` (rows x cols, or x channels) over the pixels where
    ``known`` (float, 1 or 0) is 1 only: a normalised convolution, so what a hole holds
    takes no part."""
    weight = np.maximum(cv2.GaussianBlur(known, (0, 0), sigma), 1e-6)
    if values.ndim == 3:
        return cv2.GaussianBlur(values * known[..., None], (0, 0), sigma).reshape(values.shape) / weight[..., None]
    return cv2.GaussianBlur(values * known, (0, 0), sigma) / weight


def _smooth_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Fill the hole by normalised convolution with ever wider Gaussians (a first guess)."""
    out = image.copy()
    filled = ~hole
    sigma = 1.0
    while not filled.all():
        weight = filled.astype(np.float32)
        size = int(2 * round(3 * sigma) + 1)
        num = cv2.GaussianBlur(out * weight[..., None], (size, size), sigma).reshape(out.shape)
        den = cv2.GaussianBlur(weight, (size, size), sigma)
        new = (den > 1e-3) & ~filled
        out[new] = num[new] / den[new][:, None]
        filled = filled | new
        sigma *= 2.0
    return out


def _membrane_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """``image`` (float32, rows x cols x channels) with its hole pixels set to the membrane
    interpolation of the known pixels: each the mean of its four neighbours (Laplace's
    equation, the known pixels fixed; the array's edge mirrors, no flux through it).

    The smoothest fill of the hole's edge, the pixel-wise best guess where nothing inside
    can be predicted. Solved by multigrid: from the mean colour of the known pixels
    bordering the hole, :data:`MEMBRANE_CYCLES` V-cycles (:func:`_membrane_cycle`; within
    0.6 of 255 of the exact solution on the tests' photos); a hole of up to
    :data:`MEMBRANE_DIRECT_PIXELS` pixels is solved exactly at once.
    """
    out = image.copy()
    if not hole.any() or hole.all():
        return out  # nothing to fill, or nothing to fill from
    ys, xs = np.nonzero(hole)
    rows, cols = hole.shape
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    box = (slice(max(0, top - 1), min(rows, bottom + 1)), slice(max(0, left - 1), min(cols, right + 1)))
    if len(ys) <= MEMBRANE_DIRECT_PIXELS:
        out[box][hole[box]] = _solve_membrane(out[box], hole[box], np.zeros(out[box].shape, np.float32))
        return out
    # Where the hole reaches the array's edge, the box is mirrored across it: the
    # solution on the mirrored domain is symmetric, so nothing flows through the edge,
    # and every side of the grid the cycles coarsen is known picture.
    pads = [bottom - top + 1 if top == 0 else 0, bottom - top + 1 if bottom == rows else 0,
            right - left + 1 if left == 0 else 0, right - left + 1 if right == cols else 0]
    values = cv2.copyMakeBorder(np.ascontiguousarray(out[box]), *pads, cv2.BORDER_REFLECT)
    values = values.reshape(*values.shape[:2], out.shape[2])
    box_hole = cv2.copyMakeBorder(hole[box].astype(np.uint8), *pads, cv2.BORDER_REFLECT) > 0
    ring = cv2.dilate(box_hole.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~box_hole
    values[box_hole] = values[ring].mean(axis=0)
    zero = np.zeros(values.shape, np.float32)
    for _ in range(MEMBRANE_CYCLES):
        _membrane_cycle(values, box_hole, zero)
    inner = (slice(pads[0], values.shape[0] - pads[1]), slice(pads[2], values.shape[1] - pads[3]))
    out[box][hole[box]] = values[inner][hole[box]]
    return out


def _mean_of_neighbours(values: np.ndarray) -> np.ndarray:
    """Each pixel's mean of its four neighbours (the edge replicated)."""
    kernel = np.array([[0, 0.25, 0], [0.25, 0, 0.25], [0, 0.25, 0]], np.float32)
    return cv2.filter2D(values, -1, kernel, borderType=cv2.BORDER_REPLICATE).reshape(values.shape)


def _membrane_cycle(values: np.ndarray, hole: np.ndarray, right: np.ndarray) -> None:
    """One multigrid V-cycle for ``values - mean of neighbours = right`` on ``hole``, in
    place (the other pixels fixed): relax, solve for the remaining error on a grid of
    half the size (recursively; exactly once small), correct, relax again.

    Relaxation alone would take as many sweeps as the hole is wide, squared, to carry
    the edge's colours into the middle; on the coarse grid the same distance is half.
    """
    count = np.count_nonzero(hole)
    if count == 0:
        return  # a hole narrower than the finer grid's blocks: its relaxation did it all
    if count <= MEMBRANE_DIRECT_PIXELS:
        values[hole] = _solve_membrane(values, hole, right)
        return
    inside = hole[..., None].astype(np.float32)
    _relax_membrane(values, hole, right)
    residual = (right - values + _mean_of_neighbours(values)) * inside
    # Whole 2 x 2 blocks, and a ring of known pixels (error 0) around them. The coarse
    # hole is the blocks wholly in the hole: blocks that hold a known pixel as well would
    # let the coarse error spread where the fine one is 0, and the correction overshoots
    # (cycles diverged on thin parts and at the array's edge).
    rows, cols = hole.shape
    pads = (2, 2 + rows % 2, 2, 2 + cols % 2)
    padded = cv2.copyMakeBorder(residual, *pads, cv2.BORDER_CONSTANT, value=0).reshape(
        rows + pads[0] + pads[1], cols + pads[2] + pads[3], -1)
    padded_hole = cv2.copyMakeBorder(inside[..., 0], *pads, cv2.BORDER_CONSTANT, value=0)
    coarse_shape = (padded.shape[0] // 2, padded.shape[1] // 2)
    coarse_hole = _resize(padded_hole[..., None], coarse_shape, cv2.INTER_AREA)[..., 0] > 0.999
    # The coarse grid's spacing is twice as wide: the same error's Laplacian is 4x the residual.
    coarse_right = 4.0 * _resize(padded, coarse_shape, cv2.INTER_AREA)
    error = np.zeros(coarse_right.shape, np.float32)
    _membrane_cycle(error, coarse_hole, coarse_right)
    correction = _resize(error, padded.shape[:2], cv2.INTER_LINEAR)[2 : rows + 2, 2 : cols + 2]
    values += correction * inside
    _relax_membrane(values, hole, right)


def _relax_membrane(values: np.ndarray, hole: np.ndarray, right: np.ndarray) -> None:
    """:data:`MEMBRANE_SWEEPS` red-black over-relaxed sweeps of ``values = mean of
    neighbours + right`` on ``hole`` (each half uses the other half's new values)."""
    checker = np.add.outer(np.arange(hole.shape[0]), np.arange(hole.shape[1])) % 2 == 0
    # Each half's over-relaxation factor where it moves, 0 elsewhere: a multiplication is
    # several times quicker than a masked copy.
    halves = [(MEMBRANE_RELAXATION * (hole & (checker == parity)))[..., None].astype(np.float32) for parity in (True, False)]
    for _ in range(MEMBRANE_SWEEPS):
        for factor in halves:
            step = _mean_of_neighbours(values)  # then in place: factor (mean + right - values)
            step -= values
            step += right
            step *= factor
            values += step


def _solve_membrane(values: np.ndarray, hole: np.ndarray, right: np.ndarray) -> np.ndarray:
    """(hole pixels, channels): ``values - mean of neighbours = right`` on ``hole`` solved
    exactly (a sparse factorisation of the grid Laplacian on the hole), the other pixels
    fixed, the edge replicated as in :func:`_mean_of_neighbours`."""
    from scipy.sparse.linalg import splu

    rows, cols = hole.shape
    horizontal, vertical = np.ones((rows, cols - 1)), np.ones((rows - 1, cols))
    # Times 4: with d neighbours inside the array, d v - (hole neighbours) = (known ones) + 4 right.
    known = np.where(hole[..., None], 0.0, values.astype(np.float64))
    terms = np.stack([boundary_terms(horizontal, vertical, known[..., c]) for c in range(values.shape[2])], axis=-1)
    lu = splu(restricted_laplacian(horizontal, vertical, hole).tocsc())
    return lu.solve(terms[hole] + 4.0 * right[hole]).astype(np.float32)


def _fast_sine_span(first: int, stop: int, length: int) -> tuple[int, int]:
    """[first, stop) clipped to [0, length), then widened where the array allows until
    the sine transform of its inside (n = stop - first - 2 samples) is a fast one: it runs
    as an FFT of 2 (n + 1), which with a large prime factor (n = 500: 1002 = 2 x 3 x 167)
    costs three times what the next fast n + 1 does (n = 503)."""
    from scipy.fft import next_fast_len

    first, stop = max(0, first), min(length, stop)
    inside = stop - first - 2
    grow = next_fast_len(inside + 1) - 1 - inside  # twice a fast length is fast too
    below = min(grow, length - stop)
    return max(0, first - (grow - below)), stop + below


def _texture_features(crop: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """(rows, cols, 2) local mean of |d/dx| and |d/dy| of the luminance, known pixels only.

    Texture features after Newson et al. (2014, 2017): filled and upsampled along with the
    colours, they stay high where the hole should be textured even when the coarse colours
    are blurred, so blurred target patches keep matching textured sources, not flat ones.
    """
    luminance = crop[..., : min(3, crop.shape[2])].mean(axis=2)
    known = ~hole
    features = np.zeros(hole.shape + (2,), np.float32)
    for axis in (0, 1):
        forward = [slice(None), slice(None)]
        backward = [slice(None), slice(None)]
        forward[1 - axis], backward[1 - axis] = slice(2, None), slice(None, -2)
        pad = [(0, 0), (0, 0)]
        pad[1 - axis] = (1, 1)
        difference = np.pad(np.abs(luminance[tuple(forward)] - luminance[tuple(backward)]) / 2, pad)
        valid = np.pad(known[tuple(forward)] & known[tuple(backward)], pad).astype(np.float32)
        size = (TEXTURE_WINDOW, TEXTURE_WINDOW)
        num = cv2.boxFilter(difference * valid, cv2.CV_32F, size, normalize=False)
        den = cv2.boxFilter(valid, cv2.CV_32F, size, normalize=False)
        features[..., 1 - axis] = np.where(den > 0, num / np.maximum(den, 1e-6), 0.0)
    return features


def _opponent(image: np.ndarray) -> list[np.ndarray]:
    """Channel planes after an orthonormal opponent colour transform (gray stays gray)."""
    channels = image.shape[2]
    if channels < 3:
        return [image[..., c] for c in range(channels)]
    red, green, blue = image[..., 0], image[..., 1], image[..., 2]
    planes = [
        (red + green + blue) * np.float32(1 / np.sqrt(3)),
        (red - blue) * np.float32(1 / np.sqrt(2)),
        (red - 2 * green + blue) * np.float32(1 / np.sqrt(6)),
    ]
    return planes + [image[..., c] for c in range(3, channels)]


def _dct_basis(size: int) -> np.ndarray:
    """(size, size) orthonormal DCT-II basis: row u is the u-th cosine over the patch."""
    n = np.arange(size)
    basis = np.cos(np.pi * (2 * n[None, :] + 1) * n[:, None] / (2 * size)) * np.sqrt(2.0 / size)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


class _Level:
    """Matches of one pyramid level: every patch overlapping the hole -> a known patch."""

    def __init__(self, image, hole, radius: int, rng: np.random.Generator, colour: int, ctx: RunContext):
        self.image = image.copy()
        # Each step below is a pass over every target; on a hole of a megapixel or more a
        # handful of them takes seconds, so Cancel is checked between single passes.
        self.ctx = ctx
        self.colour = colour
        self.hole = hole
        self.radius = radius
        self.rng = rng
        rows, cols = hole.shape
        self.shape = (rows, cols)
        self.valid = _valid_sources(hole, radius)
        self.valid_flat = self.valid.ravel()
        self._neighbour_cache = None
        self._vote_cache: dict = {}
        self.sources = np.flatnonzero(self.valid)
        size = 2 * radius + 1
        targets = cv2.dilate(hole.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
        interior = np.zeros_like(targets)
        interior[radius : rows - radius, radius : cols - radius] = True
        targets &= interior
        self.ty, self.tx = (a.astype(np.int32) for a in np.nonzero(targets))
        self.index = np.full(self.shape, -1, np.int32)
        self.index[self.ty, self.tx] = np.arange(self.ty.size, dtype=np.int32)
        self.sy = np.zeros_like(self.ty)
        self.sx = np.zeros_like(self.tx)
        self.dist = np.full(self.ty.size, np.inf, np.float32)
        # Box of the target patches (plus their radius): the only place descriptors change.
        self.box = (
            max(0, int(self.ty.min()) - radius), min(rows, int(self.ty.max()) + radius + 1),
            max(0, int(self.tx.min()) - radius), min(cols, int(self.tx.max()) + radius + 1),
        )
        self.features = self._describe(self.image, (0, rows, 0, cols))

    # -- descriptors ----------------------------------------------------------------
    def _describe(self, image: np.ndarray, box) -> np.ndarray:
        """Low-frequency DCT coefficients of the patch at every pixel of ``box``.

        Colour goes through an orthonormal opponent transform first (luminance, red-blue,
        green-magenta; alpha as it is), and the DCT basis is orthonormal too, so distances
        between descriptors are the patches' squared differences restricted to the
        frequencies kept: most luminance detail, the smoothest chroma. The basis is
        separable, so every coefficient costs two 1D filters (shared between coefficients).
        """
        top, bottom, left, right = box
        r = self.radius
        size = 2 * r + 1
        rows, cols = self.shape
        t0, b0, l0, r0 = max(0, top - r), min(rows, bottom + r), max(0, left - r), min(cols, right + r)
        sub = image[t0:b0, l0:r0]
        keep = (slice(top - t0, top - t0 + bottom - top), slice(left - l0, left - l0 + right - left))
        large = rows * cols > 4_000_000  # bound the descriptor array on huge regions
        planes = _opponent(sub[..., : self.colour])
        frequencies = [LUMA_FREQUENCIES] + [CHROMA_FREQUENCIES] * (len(planes) - 1)
        planes += [sub[..., c] for c in range(self.colour, sub.shape[2])]
        frequencies += [TEXTURE_FREQUENCIES] * (sub.shape[2] - self.colour)
        cosines = _dct_basis(size)
        pairs = []  # (plane, v, u) of every coefficient kept
        for index, highest in enumerate(frequencies):
            highest = max(1, min(highest - (2 if large else 0), 2 * (size - 1)))
            for v in range(min(highest, size - 1) + 1):
                for u in range(min(highest - v, size - 1) + 1):
                    pairs.append((index, v, u))
        coefficients = []
        across = None
        for k, (index, v, u) in enumerate(pairs):
            if k == 0 or pairs[k - 1][:2] != (index, v):
                plane = np.ascontiguousarray(planes[index])
                across = cv2.filter2D(plane, cv2.CV_32F, cosines[v][None, :], borderType=cv2.BORDER_REFLECT)
            down = cv2.filter2D(across, cv2.CV_32F, cosines[u][:, None], borderType=cv2.BORDER_REFLECT)
            coefficients.append(np.ascontiguousarray(down[keep]))
            self.ctx.check()
        # Interleaved in one pass (cv2.merge): writing each coefficient into every
        # pixel's vector one at a time is a strided copy, 3x slower.
        merged = cv2.merge(coefficients).reshape(bottom - top, right - left, len(pairs))
        if box == (0, rows, 0, cols):
            return merged
        self.features[top:bottom, left:right] = merged
        return self.features

    # -- matches ----------------------------------------------------------------------
    def random_matches(self) -> None:
        picks = self.sources[self.rng.integers(0, self.sources.size, self.ty.size)]
        self.sy, self.sx = (a.astype(np.int32) for a in np.divmod(picks, self.shape[1]))
        self.dist[:] = np.inf

    def upsample_matches(self, coarse_sy: np.ndarray, coarse_sx: np.ndarray) -> None:
        """Start from the coarser level's matches (maps of its source rows and columns)."""
        ch, cw = coarse_sy.shape
        cy = np.minimum(self.ty // 2, ch - 1)
        cx = np.minimum(self.tx // 2, cw - 1)
        sy = coarse_sy[cy, cx]
        sx = coarse_sx[cy, cx]
        has = sy >= 0
        sy = np.where(has, 2 * sy + (self.ty - 2 * cy), -1)
        sx = np.where(has, 2 * sx + (self.tx - 2 * cx), -1)
        ok = self._is_source(sy, sx)
        picks = self.sources[self.rng.integers(0, self.sources.size, self.ty.size)]
        ry, rx = np.divmod(picks, self.shape[1])
        self.sy = np.where(ok, sy, ry).astype(np.int32)
        self.sx = np.where(ok, sx, rx).astype(np.int32)
        self.dist[:] = np.inf

    def matches(self) -> tuple[np.ndarray, np.ndarray]:
        """Maps of each target's source row and column (-1 where no target)."""
        sy = np.full(self.shape, -1, np.int32)
        sx = np.full(self.shape, -1, np.int32)
        sy[self.ty, self.tx] = self.sy
        sx[self.ty, self.tx] = self.sx
        return sy, sx

    def _is_source(self, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
        rows, cols = self.shape
        inside = (sy >= 0) & (sy < rows) & (sx >= 0) & (sx < cols)
        ok = np.zeros(sy.shape, bool)
        ok[inside] = self.valid[sy[inside], sx[inside]]
        return ok

    # -- PatchMatch -------------------------------------------------------------------
    def _neighbours(self) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
        """(dy, dx, targets, their neighbour target) for the propagation steps (cached)."""
        if self._neighbour_cache is None:
            rows, cols = self.shape
            steps = []
            for jump in PROPAGATION_JUMPS:
                for dy, dx in ((0, jump), (jump, 0), (0, -jump), (-jump, 0)):
                    ny, nx = self.ty + dy, self.tx + dx
                    inside = np.flatnonzero((ny >= 0) & (ny < rows) & (nx >= 0) & (nx < cols))
                    neighbour = self.index[ny[inside], nx[inside]]
                    has = neighbour >= 0
                    steps.append((dy, dx, inside[has], neighbour[has]))
            self._neighbour_cache = steps
        return self._neighbour_cache

    def search(self, iterations: int = 1, window: int | None = None, offsets: np.ndarray | None = None) -> None:
        """Improve every target's source by propagation and random search.

        ``window`` is the largest random-search window (default: the whole level; 0: none,
        propagation only). ``offsets`` (k, 2), in this level's pixels: translations
        tried first as every target's source (the picture's repeats, so a lattice or a
        row of bricks continues in step across the hole).
        """
        self.features = self._describe(self.image, self.box)
        flat = self.features.reshape(-1, self.features.shape[2])
        rows, cols = self.shape
        target_features = flat.take(self.ty * cols + self.tx, axis=0)
        self.dist = self._distance(flat, target_features, self.sy, self.sx)
        r = self.radius
        for dy, dx in np.rint(offsets).astype(int) if offsets is not None else ():
            cy = np.clip(self.ty + dy, r, rows - r - 1)
            cx = np.clip(self.tx + dx, r, cols - r - 1)
            self._try(flat, target_features, None, cy, cx)
        for _ in range(iterations):
            for dy, dx, who, neighbour in self._neighbours():
                cy = np.clip(self.sy[neighbour] - dy, r, rows - r - 1)
                cx = np.clip(self.sx[neighbour] - dx, r, cols - r - 1)
                self._try(flat, target_features[who], who, cy, cx)
                self.ctx.check()
            size = max(rows, cols) if window is None else min(window, max(rows, cols))
            while size >= 1:
                cy = self.sy + self.rng.integers(-size, size + 1, self.ty.size, dtype=np.int32)
                cx = self.sx + self.rng.integers(-size, size + 1, self.ty.size, dtype=np.int32)
                np.clip(cy, r, rows - r - 1, out=cy)
                np.clip(cx, r, cols - r - 1, out=cx)
                self._try(flat, target_features, None, cy, cx)
                size //= 2
                self.ctx.check()

    def _try(self, flat, target_features, who, cy, cx) -> None:
        """Take the candidate sources (cy, cx), inside the level, where they match better.

        ``who`` are the targets the candidates are for (None: all, in order), and
        ``target_features`` their descriptors.
        """
        candidate = cy * self.shape[1] + cx
        # take: a row gather 2-3x faster than fancy indexing, same values.
        diff = flat.take(candidate, axis=0) - target_features
        d = np.einsum("ij,ij->i", diff, diff)
        current = self.dist if who is None else self.dist[who]
        better = (d < current) & self.valid_flat[candidate]
        chosen = np.flatnonzero(better) if who is None else who[better]
        self.sy[chosen] = cy[better]
        self.sx[chosen] = cx[better]
        self.dist[chosen] = d[better]

    def _distance(self, flat, target_features, sy, sx) -> np.ndarray:
        diff = flat.take(sy * self.shape[1] + sx, axis=0) - target_features
        return np.einsum("ij,ij->i", diff, diff)

    # -- voting -----------------------------------------------------------------------
    def _vote_lists(self, stride: int) -> list[tuple[int, np.ndarray]]:
        """(flat offset, targets whose pixel at that offset is a hole pixel), cached."""
        cached = self._vote_cache.get(stride)
        if cached is None:
            r = self.radius
            cols = self.shape[1]
            first = -(r - r % stride)
            offsets = range(first, r + 1, stride)
            targets = self.ty * cols + self.tx
            hole = self.hole.ravel()
            cached = []
            for dy in offsets:
                for dx in offsets:
                    offset = dy * cols + dx
                    who = np.flatnonzero(hole[targets + offset])
                    if who.size:
                        cached.append((offset, who))
            self._vote_cache[stride] = cached
        return cached

    def harmonise(self, band: float, edge_only: bool = False) -> None:
        """Remove the seams between copied pieces in the gradient domain (Poisson).

        After a best-patch vote each hole pixel is a copy of one known pixel
        (``self.origin``). Where two neighbours were copied from neighbouring pixels the
        fill keeps their difference; across a seam (and across the hole's edge) the wanted
        difference is the mean of what each side's source continues with. The fill whose
        differences match those best, with the known pixels fixed, solves a Poisson
        equation; it is solved for the correction to the copy on the hole's bounding box,
        widened by a few known pixels to a length the fast sine transform is quick on
        (:func:`_fast_sine_span`; the box's border held). The correction the solution
        gives the known pixels of the box next to the hole is smoothed along the edge and
        taken back from the hole over ``band`` pixels inside it.

        With ``edge_only``, only the differences across the hole's edge are wanted ones,
        each the difference the hole pixel's source has with its own neighbour there (the
        mean above keeps half of any step: the known pixel's side of it is the step
        itself); inside the hole every difference the fill has now is kept. That fits a
        fill that later steps changed (its low band no longer the copy's) to the edge
        once more, without asking again for the differences its sources continue with
        inside: where a foreign fleck was replaced, those would bring its outline back.
        """
        from scipy.fft import dstn, idstn

        rows, cols = self.shape
        ys, xs = np.nonzero(self.hole)
        top, bottom = _fast_sine_span(ys.min() - 1, ys.max() + 2, rows)
        left, right = _fast_sine_span(xs.min() - 1, xs.max() + 2, cols)
        if bottom - top < 3 or right - left < 3:
            return
        channels = self.colour
        flat = self.image.reshape(-1, self.image.shape[2])[:, :channels]
        origin = self.origin.reshape(rows, cols)[top:bottom, left:right]
        image = self.image[top:bottom, left:right, :channels]
        source_row, source_col = np.divmod(origin, cols)
        box_hole = self.hole[top:bottom, left:right]
        excess = np.zeros(image.shape, np.float32)  # divergence of (wanted - actual) differences
        for axis in (0, 1):
            step = cols if axis == 0 else 1
            near = [slice(None), slice(None)]
            far = [slice(None), slice(None)]
            near[axis], far[axis] = slice(None, -1), slice(1, None)
            near, far = tuple(near), tuple(far)
            first, second = origin[near], origin[far]
            seam = second != first + step
            if edge_only:
                seam &= box_hole[near] != box_hole[far]
            if not seam.any():
                continue
            limit = rows if axis == 0 else cols
            # Only the seam pairs: what every other pair wants is what it has.
            at = np.nonzero(seam)
            first, second = first[at], second[at]
            along = source_row if axis == 0 else source_col
            ahead = np.where(along[near][at] + 1 < limit, first + step, first)
            behind = np.where(along[far][at] > 0, second - step, second)
            onward = flat.take(ahead, axis=0) - flat.take(first, axis=0)
            backward = flat.take(second, axis=0) - flat.take(behind, axis=0)
            if edge_only:
                # Across the edge the known pixel has no source to continue (its
                # "continuation" is the fill itself, which would ask for half the
                # step to stay): the hole side's source alone says what follows,
                # unless its own neighbour lies in the hole as well (a source beside
                # the hole): then nothing does, and the fill meets the known pixel.
                in_hole = self.hole.ravel()
                onward = np.where(in_hole[ahead][:, None], 0.0, onward)
                backward = np.where(in_hole[behind][:, None], 0.0, backward)
                wanted = np.where(box_hole[near][at][:, None], onward, backward)
            else:
                wanted = 0.5 * (onward + backward)
            mismatch = np.zeros(image[near].shape, np.float32)
            mismatch[at] = wanted - (image[far][at] - image[near][at])
            excess[far] -= mismatch  # d/dx of the mismatch, forward differences
            excess[near] += mismatch
        # Solve laplacian(c) = excess inside the box, c = 0 on its border.
        inner = excess[1:-1, 1:-1]
        n, m = inner.shape[:2]
        eigen = (2 * np.cos(np.pi * np.arange(1, n + 1) / (n + 1)) - 2)[:, None] + (
            2 * np.cos(np.pi * np.arange(1, m + 1) / (m + 1)) - 2
        )[None, :]
        # Two threads: the planes' transforms are independent (12 instead of 20 ms for a
        # 500 x 500 x 3 box on a 2-core machine).
        spectrum = dstn(inner, type=1, axes=(0, 1), workers=2) / eigen[..., None]
        correction = np.zeros_like(image)
        correction[1:-1, 1:-1] = idstn(spectrum, type=1, axes=(0, 1), workers=2)
        # The solution also moved the known pixels of the box that lie next to the hole
        # (none for a rectangular hole whose box was not widened), which stay as they
        # are: what it moved them by, smoothed along the edge, is taken back from the
        # hole's pixels, fading out over ``band`` pixels inside the edge.
        edge = cv2.dilate(box_hole.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~box_hole
        edge[[0, -1], :] = False
        edge[:, [0, -1]] = False
        if edge.any():
            weight = edge.astype(np.float32)
            sigma = max(1.0, band / 3.0)
            size = int(2 * round(3 * sigma) + 1)
            moved = cv2.GaussianBlur(correction * weight[..., None], (size, size), sigma).reshape(correction.shape)
            reach = cv2.GaussianBlur(weight, (size, size), sigma)
            depth = cv2.distanceTransform(box_hole.astype(np.uint8), cv2.DIST_L2, 3)
            falloff = np.clip(1.0 - (depth - 1.0) / band, 0.0, 1.0) * (reach > 1e-4)
            correction -= moved / np.maximum(reach, 1e-4)[..., None] * falloff[..., None]
        self.image[top:bottom, left:right, :channels][box_hole] += correction[box_hole]

    def average_low_band(self, sigma: float) -> None:
        """Replace the fill's band below a Gaussian of ``sigma`` by that of the averaged vote.

        The copy keeps its grain (everything above the band); its local mean becomes the
        weighted mean of what all covering patches' sources hold (``self.average``, from
        :meth:`copy_best`), which is closer to the true content where the sources
        disagree (random texture) and the same where they agree (structure).
        """
        channels = self.colour
        rows, cols = self.shape
        average = self.average
        ys, xs = np.nonzero(self.hole)
        top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        reach = int(np.ceil(3 * sigma))
        top, left = max(0, top - reach), max(0, left - reach)
        bottom, right = min(rows, bottom + reach), min(cols, right + reach)
        box = (slice(top, bottom), slice(left, right))
        # Outside the hole both are the known picture: the difference is the hole's only.
        difference = np.zeros((bottom - top, right - left, channels), np.float32)
        hole = self.hole[box]
        difference[hole] = average[box][hole] - self.image[box][hole][:, :channels]
        low = cv2.GaussianBlur(difference, (0, 0), sigma).reshape(difference.shape)
        self.image[box][hole, :channels] += low[hole]

    def blend_membrane_low_band(self, sigma: float) -> None:
        """Move the fill's band below a Gaussian of ``sigma`` towards that of the membrane
        fill of the hole (:func:`_membrane_fill`), as far as the covering patches'
        sources disagree (``self.disagreement``, from :meth:`copy_best`) relative to the
        variance of the known pixels near the hole about their local mean.

        Where the copies' local mean is one random draw of the texture's, the edge's
        colours are the better guess; where the sources agree (structure) nothing
        changes. The grain above the band is untouched.
        """
        channels = self.colour
        rows, cols = self.shape
        ys, xs = np.nonzero(self.hole)
        reach = int(np.ceil(3 * sigma)) + 1
        box = (slice(max(0, ys.min() - reach), min(rows, ys.max() + reach + 1)),
               slice(max(0, xs.min() - reach), min(cols, xs.max() + reach + 1)))
        image = np.ascontiguousarray(self.image[box][..., :channels])
        hole = self.hole[box]
        difference = _membrane_fill(image, hole) - image  # 0 outside the hole
        low = cv2.GaussianBlur(difference, (0, 0), sigma).reshape(difference.shape)
        # The texture's own variance around its local mean, among the known pixels next
        # to the hole: what the sources' disagreement comes to where they are random.
        near = ~hole & (cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3) <= reach)
        local_mean = _known_blur(image, (~hole).astype(np.float32), sigma)
        texture = float(np.mean(np.sum((image - local_mean) ** 2, axis=2)[near])) if near.any() else 0.0
        disagreement = cv2.GaussianBlur(self.disagreement[box], (0, 0), sigma)
        # (A floor that no pixel scale reaches: float images may span 0..0.001.)
        share = np.clip(disagreement / max(MEMBRANE_DISAGREEMENT * texture, 1e-30), 0.0, 1.0)
        self.image[box][hole, :channels] += share[hole][:, None] * low[hole]

    def clip_specks(self, quantile: float) -> None:
        """Keep the fill no speckier than the known pixels around the hole.

        A coherent copy carries along whatever its source region holds, a star or a
        bright fleck beside the real sky, which in plain surroundings is a visible speck
        (and costs far more squared error than it weighs). Each hole pixel's departure
        from the 5 x 5 median is clipped to the ``quantile`` of those departures among the
        known pixels within two patches of the hole: in grass, fur or a fence that bound
        is the texture's own contrast and nothing changes; in a plain sky it is the noise.
        """
        channels = self.colour
        rows, cols = self.shape
        reach = 2 * (2 * self.radius + 1)
        ys, xs = np.nonzero(self.hole)
        box = (slice(max(0, ys.min() - reach), min(rows, ys.max() + reach + 1)),
               slice(max(0, xs.min() - reach), min(cols, xs.max() + reach + 1)))
        image = self.image[box][..., :channels]
        median = np.dstack([cv2.medianBlur(np.ascontiguousarray(image[..., c]), 5) for c in range(channels)])
        departure = image - median
        size = np.abs(departure).max(axis=2)
        hole = self.hole[box]
        ring = ~hole & (cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3) <= reach)
        if not ring.any():
            return
        bound = float(np.quantile(size[ring], quantile))
        scale = np.minimum(1.0, bound / np.maximum(size, 1e-6))
        self.image[box][hole, :channels] = (median + departure * scale[..., None])[hole]

    def remove_foreign_objects(self, quantile: float, sigma: float, ring_patches: float, factor: float,
                               grow: int) -> None:
        """Replace pieces of foreign objects in a fill of plain surroundings by a smooth fill.

        :meth:`clip_specks` removes what the 5 x 5 median does not follow; a copied piece
        of an object several pixels wide (a fleck of a launch tower in a plain sky) it
        follows. Here a hole pixel is foreign when its departure from a smooth fill of
        the hole (the normalised convolution of :func:`_smooth_fill`, blurred by a
        Gaussian of ``sigma``) exceeds ``factor`` times the ``quantile`` of the departures
        of the known pixels within ``ring_patches`` patches of the hole from their own
        blur by that Gaussian (a blur of the known pixels only). Foreign pixels, grown by
        ``grow`` pixels and feathered, take the smooth fill. Next to texture or structure
        the bound is their own contrast and nothing changes; in a plain sky it is the
        sky's faint variation. Thin structure that crosses plain surroundings (a wire
        over a sky) is under 1 % of the ring, below the quantile: a copy continuing it
        into the hole is foreign too, and the smooth fill leaves a faint smudge of it.
        """
        channels = self.colour
        rows, cols = self.shape
        reach = max(2, int(round(ring_patches * (2 * self.radius + 1))))
        pad = reach + int(np.ceil(3 * sigma))
        ys, xs = np.nonzero(self.hole)
        box = (slice(max(0, ys.min() - pad), min(rows, ys.max() + pad + 1)),
               slice(max(0, xs.min() - pad), min(cols, xs.max() + pad + 1)))
        image = self.image[box][..., :channels]
        hole = self.hole[box]
        ring = ~hole & (cv2.distanceTransform((~hole).astype(np.uint8), cv2.DIST_L2, 3) <= reach)
        if not ring.any():
            return
        # The known pixels' own blur, the hole left out: a large foreign piece at the
        # hole's edge must not raise the bound that finds it.
        known_blur = _known_blur(image, (~hole).astype(np.float32), sigma)
        known_departure = np.abs(image - known_blur).max(axis=2)
        bound = factor * float(np.quantile(known_departure[ring], quantile))
        # The smooth fill is made on the pyramid's halvings down to about sigma / 2 (known
        # pixels averaged only with known ones): at full size its ever wider convolutions
        # cost a large hole more than the rest of the fill's end.
        small, small_hole = image, hole
        for _ in range(max(0, int(np.log2(max(1.0, sigma / 2))))):
            small, small_hole = _downsample(small, small_hole)
        if small_hole.all():
            return  # no known pixel survives the shrinking: nothing to fill from
        filled = _resize(_smooth_fill(small, small_hole), image.shape[:2], cv2.INTER_LINEAR)
        smooth = cv2.GaussianBlur(filled, (0, 0), sigma).reshape(image.shape)
        foreign = (np.abs(image - smooth).max(axis=2) > bound) & hole
        if not foreign.any():
            return
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        matte = cv2.GaussianBlur(cv2.dilate(foreign.astype(np.float32), kernel), (0, 0), max(1.0, grow / 2))
        matte = np.maximum(matte, foreign)[..., None]
        self.image[box][hole, :channels] = (image * (1 - matte) + smooth * matte)[hole]

    def _vote_weights(self, percentile: float = SIGMA_PERCENTILE) -> np.ndarray:
        """Each target's vote weight, exp(-d / 2 sigma^2), sigma^2 a percentile of the distances."""
        sigma2 = float(np.percentile(self.dist, percentile)) if self.dist.size else 1.0
        weights = np.exp(-self.dist / (2.0 * max(sigma2, 1e-6))).astype(np.float32)
        return np.maximum(weights, 1e-8)

    def vote(self, stride: int = 1, percentile: float = SIGMA_PERCENTILE) -> None:
        """Every hole pixel := weighted mean of what the overlapping patches' sources hold.

        ``stride`` > 1 lets only the patches at every stride-th offset vote (fewer votes,
        every pixel still covered).
        """
        rows, cols = self.shape
        channels = self.image.shape[2]
        weights = self._vote_weights(percentile)
        # One array for value x weight and the weight, so each offset is one gather + add.
        extended = np.empty((rows * cols, channels + 1), np.float32)
        extended[:, :channels] = self.image.reshape(-1, channels)
        extended[:, channels] = 1.0
        acc = np.zeros((rows * cols, channels + 1), np.float32)
        targets = self.ty * cols + self.tx
        sources = self.sy * cols + self.sx
        for offset, who in self._vote_lists(stride):
            self.ctx.check()
            acc[targets[who] + offset] += weights[who, None] * extended.take(sources[who] + offset, axis=0)
        holes = np.flatnonzero(self.hole.ravel())
        covered = holes[acc[holes, channels] > 0]
        self.image.reshape(-1, channels)[covered] = acc[covered, :channels] / acc[covered, channels:]

    def copy_best(self, stride: int = 1, average: bool = False) -> None:
        """Every hole pixel := its value in the best-matching patch covering it (no averaging).

        The patches are ranked by their distance to their source over (``EDGE_PREFERENCE``
        + the known fraction of their pixels), so near the hole's edge a patch that
        straddles it wins over one that only matches the fill itself; ``stride`` > 1 lets
        only the patches at every stride-th offset take part. Works on whole shifted
        arrays of the hole's bounding box (one comparison per offset), then copies once.
        ``self.origin`` keeps, for every pixel, the flat index of the pixel it now holds
        (itself where known), for :meth:`harmonise`. With ``average``, ``self.average``
        is the level's colours with every hole pixel the weighted mean of what the
        covering patches' sources hold, as :meth:`vote` makes it, for
        :meth:`average_low_band`.
        """
        rows, cols = self.shape
        r = self.radius
        ys, xs = np.nonzero(self.hole)
        top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        # Padded by the radius so every shifted window stays inside the arrays.
        closeness = np.full((rows + 2 * r, cols + 2 * r), -np.inf, np.float32)
        size = 2 * r + 1
        known = cv2.blur((~self.hole).astype(np.float32), (size, size), borderType=cv2.BORDER_CONSTANT)
        closeness[self.ty + r, self.tx + r] = -self.dist / (EDGE_PREFERENCE + known[self.ty, self.tx])
        source = np.zeros(closeness.shape, np.int64)
        source[self.ty + r, self.tx + r] = self.sy.astype(np.int64) * cols + self.sx
        best = np.full((bottom - top, right - left), -np.inf, np.float32)
        offsets = range(-(r - r % stride), r + 1, stride)
        shifts = np.array([(dy, dx) for dy in offsets for dx in offsets])
        # Per pixel, which shift's patch wins (the first of equals); the sources are
        # looked up once afterwards, not carried through every comparison. (patch_size is
        # at most 31: 961 shifts.)
        winner = np.zeros(best.shape, np.uint16)
        for index, (dy, dx) in enumerate(shifts):
            if index % len(offsets) == 0:
                self.ctx.check()
            # The patch centred at p - (dy, dx) holds p at its offset (dy, dx).
            candidate = closeness[top + r - dy : bottom + r - dy, left + r - dx : right + r - dx]
            np.copyto(winner, index, where=candidate > best)
            np.maximum(best, candidate, out=best)
        covered = self.hole[top:bottom, left:right] & np.isfinite(best)
        box_y, box_x = np.nonzero(covered)
        win_dy, win_dx = shifts[winner[box_y, box_x]].T
        copied = source[box_y + top + r - win_dy, box_x + left + r - win_dx] + (win_dy * cols + win_dx)
        origin = np.arange(rows * cols, dtype=np.int64).reshape(rows, cols)
        origin[top:bottom, left:right][covered] = copied
        self.origin = origin.ravel()
        flat = self.image.reshape(-1, self.image.shape[2])
        if average:
            # The vote of every covering patch, gathered window by window as above.
            vote_weight = np.zeros(closeness.shape, np.float32)
            vote_weight[self.ty + r, self.tx + r] = self._vote_weights()
            total = np.zeros(best.shape + (self.colour,), np.float32)
            # Departures from the fill so far, not values: in float32 the sums (and more
            # so the squares) of 16-bit or large float values drown the spread in rounding.
            reference = self.image[top:bottom, left:right, : self.colour].copy()
            total_squares = np.zeros(best.shape, np.float32)
            weight_sum = np.zeros(best.shape, np.float32)
            for dy in offsets:
                self.ctx.check()
                for dx in offsets:
                    window = (slice(top + r - dy, bottom + r - dy), slice(left + r - dx, right + r - dx))
                    # Where no patch is centred the index is a harmless stand-in, weighted 0.
                    held = flat.take(source[window] + (dy * cols + dx), axis=0)[..., : self.colour]
                    weight = vote_weight[window]
                    departure = held - reference
                    total_squares += np.einsum("ijc,ijc->ij", departure, departure) * weight
                    departure *= weight[..., None]
                    total += departure
                    weight_sum += weight
            self.average = self.image[..., : self.colour].copy()
            norm = np.maximum(weight_sum, 1e-12)
            mean_departure = total / norm[..., None]
            voted = reference + mean_departure
            self.average[top:bottom, left:right][covered] = voted[covered]
            # How much the covering patches' sources disagree (their variance, summed over
            # colours): about the texture's own variance where they are random draws from
            # it, near 0 where they all continue the same structure.
            self.disagreement = np.zeros(self.shape, np.float32)
            spread = np.maximum(total_squares / norm - np.einsum("ijc,ijc->ij", mean_departure, mean_departure), 0.0)
            self.disagreement[top:bottom, left:right][covered] = spread[covered]
        self.image[top:bottom, left:right][covered] = flat.take(copied, axis=0)
