"""Learned inpainting with LaMa: a network fills the hole with texture it learned from photos.

LaMa (Suvorov et al., "Resolution-robust Large Mask Inpainting with Fourier Convolutions",
WACV 2022) fills large holes with plausible structure where patch and diffusion methods
smear. maskwork runs the published ``big-lama.pt`` TorchScript file, the one lama-cleaner
and IOPaint download (catalogue name ``big_lama``), or any TorchScript file with the same
call, which this module relies on:

``model(image, mask) -> inpainted``
    ``image`` float32 (1, 3, H, W) RGB in [0, 1]; ``mask`` float32 (1, 1, H, W), 1 in the
    hole and 0 elsewhere; ``inpainted`` (1, 3, H, W) in [0, 1]. The file is advimman/lama's
    ``bin/to_jit.py`` trace of a wrapper around the training module, whose forward blanks
    the hole (``image * (1 - mask)``), appends the mask as a fourth channel, runs the
    generator and returns ``mask * predicted + (1 - mask) * image``
    (``saicinpainting/training/trainers/default.py``). H and W must be multiples of 8 (three
    stride-2 stages); IOPaint pads with ``np.pad(mode="symmetric")`` up to them
    (``iopaint/model/lama.py``: ``pad_mod = 8``; ``iopaint/helper.py``:
    ``pad_img_to_modulo``, ``norm_img``), and so does :class:`LamaNetwork`.

How a run goes
--------------
1. **Regions.** Each connected hole of the mask gets a context window: its bounding box
   grown on every side by ``context`` times its longer side (at least
   :data:`MIN_MARGIN` pixels), moved back inside the image where it crosses a border so
   that a hole in a corner keeps as much context as one in the middle. Holes whose
   windows overlap share one window when the union is no longer than ``working_size``
   (or than the larger of the two), so a hundred specks cost a few model runs, not a
   hundred; windows that still overlap are filled one after the other, the later one
   seeing the earlier fill as picture.
2. **Working size.** LaMa was trained on 256-pixel crops and does best with inputs up to
   about a thousand pixels. A window whose longer side exceeds ``working_size`` is
   reduced by area averaging; a reduced pixel touching the hole counts as hole, so no
   pixel of what is removed reaches the network. The window keeps its full resolution
   otherwise: the surroundings of the hole are never resampled.
3. **Fill.** The network runs on the window; a reduced window's output is enlarged
   (bicubic) to full size. The seam this leaves is corrected inside the hole only: the
   step between the hole's edge pixels and the picture next to them is smoothed along
   the edge and added to the fill, fading to zero a few pixels in (two reduced pixels),
   so the fill meets the full-resolution surroundings without a step.
4. **Paste.** Only the hole's pixels are written, converted back to the image's type:
   every pixel outside the mask is bit-identical to the input.

Progress is reported per window, each finished window but the last is offered as a
partial result, and Cancel is checked before and after every window. The network's call
on one window is a single TorchScript call that cannot be interrupted: Cancel waits for
it (on a CPU, seconds at the default working size).

Pixel types
-----------
Gray images go to the network as three equal channels and come back as the Rec. 709
luminance of its output. RGBA: the colour is filled, the alpha channel is kept as it is
everywhere, the hole included. 8-bit, 16-bit and other integer images are mapped by their
type's range onto [0, 1]; floats within [0, 1] as they are, other floats by their finite
minimum and maximum (:func:`maskwork.core.pixels.value_range`), and back, rounding and
clipping integers. The fill of a 16-bit image holds 16-bit values, but it carries only
the precision the network computes with (float32 on the CPU; float16 where half
precision runs, about 11 significant bits) and was trained for (8-bit photos): fine
gradations below 1/255 of the range are interpolated, not restored. NaN and infinite
pixels of a float image near a hole are treated as unknown (never copied from); only the
mask's pixels are written.

Devices
-------
``device`` as for the other deep-learning operators, except Apple's MPS, where IOPaint
reports LaMa unsupported (``iopaint/const.py``: ``MPS_UNSUPPORT_MODELS``): auto then
means the CPU. On CUDA the network runs under float16 autocast; LaMa's Fourier units
call ``torch.fft.rfftn``, which cuFFT computes in half precision only for power-of-two
sizes (advimman/lama issue 360), so a window whose size does not allow it (or whose
float16 output is not finite) is run again in float32, as is the rest of the run.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import cv2
import numpy as np

from maskwork.core.pixels import LUMA_WEIGHTS, gray_to_rgb, value_range
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.dl.device import (
    autocast,
    import_torch,
    out_of_memory_as_input_error,
    resolve_device,
    uses_half_precision,
)
from maskwork.operators.registry import FilePath, Range, register
from maskwork.operators.seeds import bounding_box, check_image, check_mask, mask_pixels

if TYPE_CHECKING:  # torch is imported only when the model runs
    import torch

#: The catalogue model the operator runs unless it is given another file.
DEFAULT_MODEL = "big_lama"
MODEL_FILTER = "LaMa TorchScript models (*.pt *.ts *.torchscript)"
#: Sides of the network's input are padded up to a multiple of this (three stride-2 stages).
PAD_MULTIPLE = 8
#: Fewest pixels of picture on each side of a hole's bounding box that the network sees.
MIN_MARGIN = 64
#: float32 values per working pixel big-lama holds at its peak, for the memory estimate:
#: 64 feature channels at full resolution with about three maps alive (input, convolution,
#: normalisation); the 512-channel Fourier blocks run at 1/8 resolution, 1/64 of the
#: pixels. A figure from the architecture, not a measurement.
ACTIVATIONS_PER_PIXEL = 256
#: How far into the hole the seam correction of a reduced window reaches, in reduced
#: pixels: the enlarged fill's blur.
SEAM_WIDTH = 2


@dataclass(frozen=True)
class Region:
    """One model run: the window the network sees and the holes whose pixels it fills.

    Attributes
    ----------
    rows, cols : slice
        The context window in image coordinates.
    holes : tuple of int
        Labels (in the mask's connected components) of the holes filled from this window.
    """

    rows: slice
    cols: slice
    holes: tuple[int, ...]

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the window."""
        return self.rows.stop - self.rows.start, self.cols.stop - self.cols.start


# ------------------------------------------------------------------ regions


def _span_inside(start: int, stop: int, length: int) -> tuple[int, int]:
    """[start, stop) moved inside [0, length), keeping its size where the length allows."""
    size = min(stop - start, length)
    start = min(max(start, 0), length - size)
    return start, start + size


def hole_regions(shape: tuple[int, int], boxes: np.ndarray, context: float, working_size: int) -> list[Region]:
    """The context windows of the holes, holes with overlapping windows grouped.

    Parameters
    ----------
    shape : tuple of int
        (rows, cols) of the image.
    boxes : ndarray
        (holes, 4) int: top, left, bottom, right (exclusive) of hole ``i + 1``.
    context : float
        Margin around each hole as a multiple of its longer side.
    working_size : int
        Longest window side the network gets without reduction: groups are not merged
        beyond it (or beyond the larger of the two windows, if that is longer).

    Returns
    -------
    list of Region
        In the order they are filled: top to bottom, left to right.
    """
    rows, cols = shape
    windows = []
    for top, left, bottom, right in boxes:
        margin = max(MIN_MARGIN, math.ceil(context * max(bottom - top, right - left)))
        window_top, window_bottom = _span_inside(top - margin, bottom + margin, rows)
        window_left, window_right = _span_inside(left - margin, right + margin, cols)
        windows.append((window_top, window_left, window_bottom, window_right))
    order = sorted(range(len(windows)), key=lambda i: windows[i][:2])
    all_group_boxes = np.empty((len(windows), 4), np.int64)  # the first len(members) are used
    members: list[list[int]] = []
    for index in order:
        window = np.asarray(windows[index], np.int64)
        group_boxes = all_group_boxes[: len(members)]
        if len(members):
            overlapping = (
                (group_boxes[:, 0] < window[2]) & (window[0] < group_boxes[:, 2])
                & (group_boxes[:, 1] < window[3]) & (window[1] < group_boxes[:, 3])
            )
            merged = np.concatenate([np.minimum(group_boxes[:, :2], window[:2]), np.maximum(group_boxes[:, 2:], window[2:])], axis=1)
            merged_side = np.maximum(merged[:, 2] - merged[:, 0], merged[:, 3] - merged[:, 1])
            own_side = np.maximum(group_boxes[:, 2] - group_boxes[:, 0], group_boxes[:, 3] - group_boxes[:, 1])
            allowed = merged_side <= np.maximum(working_size, np.maximum(own_side, max(window[2] - window[0], window[3] - window[1])))
            candidates = np.flatnonzero(overlapping & allowed)
            if candidates.size:
                areas = (merged[candidates, 2] - merged[candidates, 0]) * (merged[candidates, 3] - merged[candidates, 1])
                best = candidates[int(np.argmin(areas))]
                group_boxes[best] = merged[best]
                members[best].append(index + 1)
                continue
        all_group_boxes[len(members)] = window
        members.append([index + 1])
    return [
        Region(slice(int(top), int(bottom)), slice(int(left), int(right)), tuple(holes))
        for (top, left, bottom, right), holes in zip(all_group_boxes, members)
    ]


# ------------------------------------------------------------------ the network


def lama_model_path(model: str) -> Path:
    """The model file for the ``model`` parameter: a catalogue name or a path.

    Raises
    ------
    InputError
        When no model is named, the file does not exist, or the catalogue model is not
        downloaded (the message says how to get it).
    """
    text = model.strip()
    if not text:
        raise InputError(f"choose a LaMa model: {DEFAULT_MODEL} (Deep learning > Models...) or a big-lama.pt file")
    from maskwork.core.models import ModelNotInstalled, resolve_model

    try:
        path = resolve_model(text)
    except ModelNotInstalled as error:
        raise InputError(str(error)) from None
    if not path.is_file():
        raise InputError(f"{path} is a folder, not a model file")
    return path


class LamaNetwork:
    """A LaMa TorchScript module on a device, called on one window at a time.

    Parameters
    ----------
    module : torch.jit.ScriptModule
        ``module(image, mask) -> inpainted`` as the module docstring describes.
    device : torch.device
        Where it runs; on GPUs it is tried in float16 first (see :attr:`half`).
    """

    def __init__(self, module, device: torch.device) -> None:
        self.module = module
        self.device = device
        #: Whether the next call tries float16 autocast; cleared for good once float16
        #: fails or gives non-finite values.
        self.half = uses_half_precision(device)

    def __call__(self, pixels: np.ndarray, hole: np.ndarray) -> np.ndarray:
        """The inpainted window.

        Parameters
        ----------
        pixels : ndarray
            float32 (rows, cols, 3) RGB in [0, 1].
        hole : ndarray
            bool (rows, cols), True where the network fills.

        Returns
        -------
        ndarray
            float32 (rows, cols, 3) in [0, 1].
        """
        torch = import_torch()
        rows, cols = hole.shape
        padding = ((0, -rows % PAD_MULTIPLE), (0, -cols % PAD_MULTIPLE))
        # Mirrored padding continues the picture instead of framing it in black.
        image = np.pad(pixels, (*padding, (0, 0)), mode="symmetric")
        mask = np.pad(hole.astype(np.float32), padding, mode="symmetric")
        image_tensor = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)[None])).to(self.device)
        mask_tensor = torch.from_numpy(np.ascontiguousarray(mask[None, None])).to(self.device)
        output = self._forward(image_tensor, mask_tensor)
        expected = (1, 3, *mask.shape)
        if tuple(output.shape) != expected:
            raise InputError(
                f"the model returned shape {tuple(output.shape)} for a {'x'.join(map(str, expected))} input; "
                "LaMa returns the inpainted image, (1, 3, height, width)"
            )
        filled = output[0, :, :rows, :cols].permute(1, 2, 0).cpu().numpy()
        if not np.isfinite(filled).all():
            raise InputError("the model returned NaN or infinite values; is this LaMa's TorchScript file (big-lama.pt)?")
        return np.clip(filled, 0.0, 1.0)

    def _forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The module's float32 output, from float16 autocast where that works."""
        torch = import_torch()
        if self.half:
            try:
                with torch.inference_mode(), autocast(self.device):
                    output = self._checked_call(image, mask).float()
                if bool(torch.isfinite(output).all()):
                    return output
            except RuntimeError as error:  # cuFFT refuses float16 sizes that are no power of two
                if "out of memory" in str(error).lower():
                    raise
            self.half = False
        with torch.inference_mode():
            try:
                return self._checked_call(image, mask).float()
            except RuntimeError as error:
                if "out of memory" in str(error).lower():
                    raise  # out_of_memory_as_input_error explains this one
                lines = [line.strip() for line in str(error).splitlines() if line.strip()]
                raise InputError(
                    f"the model failed on a {image.shape[2]}x{image.shape[3]} window: {lines[-1] if lines else error!r}; "
                    "LaMa takes (image, mask) and returns the inpainted image"
                ) from None

    def _checked_call(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        output = self.module(image, mask)
        if isinstance(output, (tuple, list)):
            output = output[0]
        if not isinstance(output, import_torch().Tensor):
            raise InputError(f"the model returned {type(output).__name__}, not the inpainted image")
        return output


def load_lama(path: Path, device: torch.device) -> LamaNetwork:
    """The LaMa TorchScript file ``path`` ready on ``device`` (loaded once per file version).

    Raises
    ------
    InputError
        When the file is not TorchScript or its forward does not take (image, mask).
    """
    from maskwork.operators.dl.model_file import TorchScriptModel, load_model

    loaded = load_model(path, device)
    if not isinstance(loaded, TorchScriptModel):
        raise InputError(f"{path.name} is an ONNX model; LaMa runs from its TorchScript file (big-lama.pt)")
    arguments = [argument.name for argument in loaded.module.forward.schema.arguments if argument.name != "self"]
    if len(arguments) != 2:
        raise InputError(
            f"{path.name} takes {len(arguments)} input(s) ({', '.join(arguments) or 'none'}); "
            "LaMa takes two, the image and the mask"
        )
    return LamaNetwork(loaded.module, device)


# ------------------------------------------------------------------ one window


def fill_window(network: LamaNetwork, pixels: np.ndarray, unknown: np.ndarray, working_size: int) -> tuple[np.ndarray, float]:
    """Run the network on a window, reduced first when it exceeds ``working_size``.

    Parameters
    ----------
    network : LamaNetwork
        The model.
    pixels : ndarray
        float32 (rows, cols, 3) in [0, 1]; values at ``unknown`` are not used.
    unknown : ndarray
        bool (rows, cols): pixels to fill (the hole and any unusable pixel).
    working_size : int
        Longest side the network gets.

    Returns
    -------
    filled : ndarray
        float32 (rows, cols, 3) in [0, 1]: the window with its unknown pixels filled.
    scale : float
        The reduction used, 1.0 for none.
    """
    pixels = np.where(unknown[..., None], np.float32(0.0), pixels)  # nothing of the hole reaches the model
    rows, cols = unknown.shape
    scale = min(1.0, working_size / max(rows, cols))
    if scale == 1.0:
        return network(pixels, unknown), 1.0
    small_size = (max(1, round(cols * scale)), max(1, round(rows * scale)))  # OpenCV: (width, height)
    small_pixels = cv2.resize(pixels, small_size, interpolation=cv2.INTER_AREA)
    # A reduced pixel that overlaps the hole at all is hole: area averaging mixes it.
    small_unknown = cv2.resize(unknown.astype(np.float32), small_size, interpolation=cv2.INTER_AREA) > 0
    small_filled = network(small_pixels, small_unknown)
    filled = cv2.resize(small_filled, (cols, rows), interpolation=cv2.INTER_CUBIC)
    width = max(2, math.ceil(SEAM_WIDTH / scale))
    # The correction reaches ``width`` pixels into the hole and reads about as far along
    # its edge: the hole's box with that margin holds all it needs.
    top, left, bottom, right = bounding_box(unknown)
    margin = 2 * width + 2
    box = (slice(max(top - margin, 0), bottom + margin), slice(max(left - margin, 0), right + margin))
    filled[box] += _seam_correction(pixels[box], np.clip(filled[box], 0.0, 1.0), unknown[box], width)
    return np.clip(filled, 0.0, 1.0, out=filled), scale


def _seam_correction(pixels: np.ndarray, filled: np.ndarray, unknown: np.ndarray, width: int) -> np.ndarray:
    """What to add to an enlarged fill so that it meets the picture at the hole's edge.

    On the hole's edge (hole pixels with a known neighbour) the step between the mean of
    the known neighbours and the fill is measured, smoothed along the edge (a normalised
    Gaussian of ``width / 2``, so the picture's texture is not copied in) and added inside
    the hole with a weight falling from 1 on the edge to 0 at ``width`` pixels in; outside
    the hole the correction is 0.
    """
    known = (~unknown).astype(np.float32)
    neighbours = cv2.blur(known, (3, 3))
    neighbour_mean = cv2.blur(pixels * known[..., None], (3, 3)) / np.maximum(neighbours, 1e-6)[..., None]
    edge = unknown & (neighbours > 0)
    sigma = width / 2
    weights = cv2.GaussianBlur(edge.astype(np.float32), (0, 0), sigma)
    step = np.where(edge[..., None], neighbour_mean - filled, np.float32(0.0))
    spread = cv2.GaussianBlur(step, (0, 0), sigma).reshape(step.shape)
    # distanceTransform gives each nonzero pixel its distance to the nearest zero one: 1 on the edge.
    depth = cv2.distanceTransform(unknown.astype(np.uint8), cv2.DIST_L2, 3)
    fade = np.clip(1.0 - (depth - 1.0) / width, 0.0, 1.0) * unknown
    fade = np.where(weights > 1e-3, fade / np.maximum(weights, 1e-3), 0.0).astype(np.float32)
    return spread * fade[..., None]


# ------------------------------------------------------------------ the operator


def _estimate_memory(inputs: dict, params: dict) -> int:
    """Bytes for the weights (file and loaded copy), the network's activations on the
    largest window it may get, that window's buffers and the result image."""
    image = np.asarray(inputs["image"])
    try:
        weights = os.path.getsize(lama_model_path(params["model"]))
    except (InputError, OSError):
        weights = 0
    working = min(image.shape[0] * image.shape[1], params["working_size"] ** 2)
    window_buffers = working * 3 * 4 * 6  # window, padded copy, tensors, output, enlarged fill
    return int(2 * weights + working * ACTIVATIONS_PER_PIXEL * 4 + window_buffers + 2 * image.nbytes)


@register(
    "learned_inpaint",
    title="Learned inpainting (LaMa)",
    category="Deep learning",
    outputs=("image",),
    requires=("torch",),
    memory_estimate=_estimate_memory,
)
def learned_inpaint(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    model: Annotated[str, FilePath(MODEL_FILTER)] = DEFAULT_MODEL,
    working_size: Annotated[int, Range(128, 4096)] = 1024,
    context: Annotated[float, Range(0.1, 4.0)] = 0.5,
    device: Literal["auto", "cuda", "cpu"] = "auto",
    ctx: RunContext | None = None,
) -> Result:
    """Fill the pixels under a mask with LaMa, a network trained to inpaint photos.

    Each hole is filled from a window of picture around it at full resolution (reduced
    only when larger than the working size); pixels outside the mask are never changed.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image, (row, col[, channel]); 8-bit, 16-bit or float. The result
        has the same shape and type; the alpha channel is kept as it is.
    mask : ndarray
        Mask or labels layer of the image's size: nonzero pixels are filled. An empty
        mask is an error, as is one covering the whole image.
    model : str
        big_lama (download it with Deep learning > Models... or ``maskwork models
        download big_lama``) or the path of a LaMa TorchScript file (big-lama.pt as
        lama-cleaner and IOPaint use it).
    working_size : int
        Longest side, in pixels, of the window the network sees; a larger window is
        reduced for the network and its fill enlarged. LaMa does best up to about 1024;
        larger sizes keep more detail in big holes and need more memory and time.
    context : float
        Picture around each hole the network sees, as a multiple of the hole's longer
        side (at least 64 pixels on each side). More context helps the fill match its
        surroundings; a window beyond the working size is reduced.
    device : {"auto", "cuda", "cpu"}
        Where LaMa runs; auto takes the preferred device, else the GPU when there is one
        (on Apple MPS, which LaMa does not support, the CPU). On CUDA it runs in half
        precision where the window's size allows it.

    Returns
    -------
    Result
        ``outputs["image"]``: the filled image, same shape and dtype as ``image``.
        Scores: ``regions`` (model runs), ``reduced_regions`` (those whose window was
        reduced), ``hole_pixels``, ``device`` and ``precision`` ("float16" when every window
        ran in half precision, else "float32").
    """
    ctx = ctx or null_context()
    ctx.check()
    original_shape = np.shape(image)
    img = check_image(image)
    if img.dtype == bool or not (np.issubdtype(img.dtype, np.integer) or np.issubdtype(img.dtype, np.floating)):
        raise InputError(f"inpainting needs a numeric image, got {img.dtype}")
    fill = mask_pixels(check_mask(mask, img))
    if not fill.any():
        raise InputError("the mask is empty: paint over what should be filled")
    colour = img[..., :3] if img.ndim == 3 else img
    unusable = ~np.isfinite(colour) if img.dtype.kind == "f" else np.zeros(fill.shape, bool)
    if unusable.ndim == 3:
        unusable = unusable.any(axis=2)
    unknown = fill | unusable
    if unknown.all():
        raise InputError("the mask covers the whole image: nothing is left to fill from")

    path = lama_model_path(model)
    ctx.progress(0.0, "LaMa: loading the model")
    torch_device = resolve_device(device)
    if torch_device.type == "mps":  # LaMa's Fourier units do not run there (see the module docstring)
        torch_device = resolve_device("cpu")
    with out_of_memory_as_input_error(torch_device, "choose a smaller working size"):
        network = load_lama(path, torch_device)
        count, hole_labels, stats, _ = cv2.connectedComponentsWithStats(fill.astype(np.uint8), connectivity=8)
        boxes = np.column_stack([
            stats[1:, cv2.CC_STAT_TOP], stats[1:, cv2.CC_STAT_LEFT],
            stats[1:, cv2.CC_STAT_TOP] + stats[1:, cv2.CC_STAT_HEIGHT],
            stats[1:, cv2.CC_STAT_LEFT] + stats[1:, cv2.CC_STAT_WIDTH],
        ])
        regions = hole_regions(fill.shape, boxes, context, working_size)
        out, reduced = _fill_regions(img, colour, hole_labels, unknown, regions, network, working_size, original_shape, ctx)
    ctx.progress(1.0, "LaMa: done")
    scores = {
        "regions": float(len(regions)),
        "reduced_regions": float(reduced),
        "hole_pixels": float(np.count_nonzero(fill)),
        "device": str(torch_device),
        "precision": "float16" if network.half else "float32",
    }
    return Result({"image": out}, iterations=len(regions), scores=scores, bounds=_union(regions))


def _fill_regions(img, colour, hole_labels, unknown, regions, network, working_size, shape, ctx: RunContext) -> tuple[np.ndarray, int]:
    """Fill ``regions`` one after the other into a copy of ``img``; returns it, shaped
    ``shape`` (the input's), and how many windows were reduced."""
    offset, span = value_range(img)
    out = img.copy()
    out_colour = out[..., :3] if out.ndim == 3 else out
    unknown = unknown.copy()
    sizes = [rows * cols for rows, cols in (region.shape for region in regions)]
    done, total, reduced = 0, float(sum(sizes)), 0
    for number, (region, size) in enumerate(zip(regions, sizes), start=1):
        window = (region.rows, region.cols)
        rows, cols = region.shape
        ctx.progress(done / total, f"LaMa: region {number}/{len(regions)}, {cols}x{rows} px")
        crop = colour[window].astype(np.float32)
        crop = (crop - np.float32(offset)) * np.float32(1.0 / span)
        if img.dtype.kind == "f":
            np.nan_to_num(crop, copy=False, nan=0.0, posinf=1.0, neginf=0.0)  # unknown anyway
        np.clip(crop, 0.0, 1.0, out=crop)
        pixels = crop if crop.ndim == 3 else gray_to_rgb(crop)
        filled, scale = fill_window(network, pixels, unknown[window], working_size)
        reduced += scale < 1.0
        ctx.check()
        paste = np.isin(hole_labels[window], region.holes) & unknown[window]
        values = filled[paste] if colour.ndim == 3 else filled[paste] @ LUMA_WEIGHTS
        values = values.astype(np.float64) * span + offset
        if np.issubdtype(img.dtype, np.integer):
            info = np.iinfo(img.dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        out_colour[window][paste] = values.astype(img.dtype)
        unknown[window] &= ~paste  # filled pixels are picture for any later window
        done += size
        if ctx.wants_partials and number < len(regions):
            ctx.partial(Result({"image": out.reshape(shape).copy()}, bounds=_union(regions)))
    return out.reshape(shape), reduced


def _union(regions: list[Region]) -> tuple[slice, slice]:
    return (
        slice(min(r.rows.start for r in regions), max(r.rows.stop for r in regions)),
        slice(min(r.cols.start for r in regions), max(r.cols.stop for r in regions)),
    )
