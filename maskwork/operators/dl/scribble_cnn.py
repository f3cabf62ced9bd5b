"""A small CNN trained in seconds on the scribbles of the image it segments.

The person scribbles classes 1..N; a fully convolutional network (a two-level U-Net)
learns from those pixels alone and labels every other pixel. It is the deep-learning
sibling of ilastik's pixel classifier: no pre-trained model, it learns what each class
looks like in this image, so a few strokes on some cells or coins label all of them.

How a run goes
--------------
1. **Working resolution.** Images larger than ``working_megapixels`` are reduced (area
   averaging) to about that size. A training step costs the same on any image (it sees
   crops), but at a bounded size the network's receptive field covers a useful share of
   the object and every preview is one quick pass. The scribbles are reduced with the
   image: a working pixel keeps a class when at least a third of it was scribbled with it.
2. **Input channels.** The image's channels plus, by default, ilastik-style filters
   (:func:`pixel_features`): Gaussian-smoothed channels, gradient magnitude, Laplacian of
   Gaussian and structure-tensor eigenvalues of the luminance at sigma 1, 2 and 4. Each
   channel is standardised over the image (zero mean, unit deviation).
3. **Training.** Adam on batches of square crops, each centred near a scribbled pixel of a
   class drawn uniformly (so a long background stroke does not drown a short object one),
   randomly flipped and turned by multiples of 90 degrees (every filter is rotation
   invariant, so the stack turns with the pixels) and jittered in brightness and contrast
   (applied to the filters consistently: smoothed channels move with both, derivatives
   scale with the contrast, structure-tensor eigenvalues with its square). The loss is
   the cross-entropy on scribbled pixels only, averaged per class and then over classes:
   each class weighs the same whatever its number of scribbled pixels.
4. **Live preview.** After :data:`FIRST_PREVIEW_STEP` steps (fewer when training
   continues), and then whenever the time
   spent on previews falls under :data:`PREVIEW_SHARE` of the time spent training (at
   most every :data:`PREVIEW_INTERVAL` seconds), the
   working image (a reduced copy of a large photo) is predicted and sent as a partial
   result: labels and probabilities at the working size, which the window stretches over
   the image, with the training loss as the ``metric`` score so the window plots it.
5. **Final result.** The working image is predicted in one pass, or tile by tile with
   overlapping, blended tiles when it is larger than a tile
   (:func:`~maskwork.operators.dl.device.predict_tiled`), so memory stays bounded; the
   probabilities are then resized bilinearly to the image's full size. With
   ``connected``, regions not connected to a scribble of their class first go to a
   class they border (:func:`_connected_to_scribbles`): one object per class, as a
   cut-out wants.

Continuing training
-------------------
The trained network and its optimiser stay in a small in-memory cache (the last
:data:`CACHE_SIZE` of them), keyed by the image's pixels, the class ids, the settings that
shape the network or its inputs (``features``, ``width``, ``levels``,
``working_megapixels``, ``seed``) and the device. When the operator runs again with the
same key (the person added a correcting scribble), training resumes from those weights
with the new scribbles and runs ``resume_steps`` steps instead of ``steps``: the network
already knows the image and only has to take the new scribble in. ``restart`` drops the
cached weights. A run holds its network's lock while it trains and predicts, so a new
preview waits (cancellably) for a stale one to notice its cancellation rather than
training the same weights from two threads at once; a cancelled run leaves its partly
trained weights in the cache, which the next run continues.

Runs are reproducible: weights start from ``seed`` (a private torch generator, so other
threads' random numbers are untouched), and crops and augmentations come from a numpy
generator seeded by ``seed`` and the number of steps trained so far. A run from new
weights is therefore repeatable exactly; a continuing run also depends on the runs
before it (``restart`` reproduces from scratch).
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Literal

import cv2
import numpy as np

from maskwork.core.pixels import to_float
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.dl.device import (
    autocast,
    image_key,
    import_torch,
    out_of_memory_as_input_error,
    predict_tiled,
    resolve_device,
    uses_half_precision,
)
from maskwork.operators.registry import Range, ScorePlot, register
from maskwork.operators.seeds import check_image, markers_with_clicks, scribble_classes
from maskwork.operators.stoppable import call_warm

if TYPE_CHECKING:  # torch is imported only when the operator runs
    import torch

#: Scales (pixels, at the working resolution) of the ilastik-style filters.
FILTER_SIGMAS = (1.0, 2.0, 4.0)
#: Trained networks kept for continuing (each a few hundred kilobytes plus its optimiser).
CACHE_SIZE = 2
#: Steps before the first preview of a new network: enough to tell the classes apart...
FIRST_PREVIEW_STEP = 10
#: ...and of a network that continues training: it knows the image, a few steps take in
#: the new scribble.
FIRST_RESUMED_PREVIEW_STEP = 3
#: Previews may take at most this share of the training time...
PREVIEW_SHARE = 0.25
#: ...and come at most every this many seconds (a screen update each is plenty).
PREVIEW_INTERVAL = 0.25
#: Brightness offset (in standard deviations of the image) and contrast gain jitter.
BRIGHTNESS_JITTER = 0.1
CONTRAST_JITTER = 0.1
#: A working pixel keeps a scribble class when at least this share of it was scribbled.
MARKER_COVERAGE = 1.0 / 3.0
#: Default weight of the two-class graph cut's smoothness (0 = most probable class): best of
#: 20, 50 and 100 on the 8 tuning photos (mean IoU 0.59, 0.63, 0.60; 0.53 without the cut).
SMOOTHNESS = 50.0
#: Overlap between prediction tiles, in working pixels: about the network's receptive field.
TILE_OVERLAP = 32
#: Starting loss scale for float16 training on GPUs (halved whenever gradients overflow).
INITIAL_LOSS_SCALE = 1024.0


def _estimate_memory(inputs: dict, params: dict) -> int:
    """Bytes a run needs, for the front-ends' warning before a run that will not fit.

    With ``P`` full-size pixels, ``Pw = min(P, working_megapixels * 1e6)`` working pixels,
    ``F`` input channels (:func:`_input_channels`), ``N`` classes, base width ``w`` and
    ``L`` levels, the network holds ``A = F + N + sum_l 6 w 2**l / 4**l`` values per
    input pixel at level ``l`` resolution (two convolutions per encoder level, an
    upsampled copy, a concatenation and two convolutions per decoder level). Then::

        features     Pw * F * 4 * 2           (filters, standardised in place and shared
                                               with the CPU's tensor; on a GPU, the device's
                                               copy and the host copy tiles are cut from)
        training     batch_size * crop_size**2 * A * 4 * 3
                                              (activations, their gradients, ReLU masks)
        prediction   min(Pw, tile_size**2) * (A + F) * 4 + Pw * (N + 1) * 4
                                              (one pass or tile, the blended sums)
        outputs      P * (8 N + 4) + Pw * 8 N (probabilities twice, labels)
        network      parameters * 16          (weights, gradients, Adam's two moments)
    """
    image = np.asarray(inputs["image"])
    markers = inputs.get("markers")
    pixels = image.shape[0] * image.shape[1]
    channels = 1 if image.ndim == 2 or image.shape[2] == 1 else 3
    classes = 2
    if markers is not None:
        markers = np.asarray(markers)
        classes = max(2, int(np.unique(markers[markers > 0]).size))  # scribbles are sparse: cheap
    working = min(pixels, params["working_megapixels"] * 1e6)
    features = _input_channels(channels, params["features"])
    width, levels = params["width"], params["levels"]
    activations = features + classes + sum(6 * width * 2**level / 4**level for level in range(levels))
    total = (
        working * features * 4 * 2
        + params["batch_size"] * params["crop_size"] ** 2 * activations * 4 * 3
        + min(working, params["tile_size"] ** 2) * (activations + features) * 4
        + working * (classes + 1) * 4
        + pixels * (8 * classes + 4)
        + working * 8 * classes
        + _parameter_count(features, classes, width, levels) * 16
    )
    return int(total)


@register(
    "scribble_cnn",
    title="Train CNN on scribbles",
    category="Deep learning",
    outputs=("labels", "probabilities"),
    requires=("torch",),
    memory_estimate=_estimate_memory,
    seed_inputs=("markers", "points"),
    # The training loss of each preview's fitting, the "metric" of its partial results.
    panel_views=(ScorePlot(y_label="training loss", x_label="training step", x_score="step"),),
)
def scribble_cnn(
    image: np.ndarray,
    markers: np.ndarray | None = None,
    points: list | None = None,
    *,
    steps: Annotated[int, Range(1, 5000)] = 100,
    resume_steps: Annotated[int, Range(1, 5000)] = 40,
    features: bool = True,
    connected: bool = False,
    smoothness: Annotated[float, Range(0.0, 100.0)] = SMOOTHNESS,
    width: Annotated[int, Range(4, 64)] = 8,
    levels: Annotated[int, Range(1, 4)] = 2,
    learning_rate: Annotated[float, Range(1e-5, 0.1)] = 3e-3,
    batch_size: Annotated[int, Range(1, 64)] = 8,
    crop_size: Annotated[int, Range(16, 512)] = 64,
    working_megapixels: Annotated[float, Range(0.01, 16.0)] = 0.3,
    tile_size: Annotated[int, Range(64, 4096)] = 768,
    restart: bool = False,
    seed: Annotated[int, Range(0, 2**31 - 1)] = 0,
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto",
    ctx: RunContext | None = None,
) -> Result:
    """Train a small CNN on the scribbles and label every pixel with it.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image, (row, col[, channel]); 8-bit, 16-bit or float (alpha is
        ignored).
    markers : ndarray
        Scribbles of the image's size: 0 = unlabelled, positive integers = classes
        (1 foreground, 2 background, 3.. more). At least two classes are needed.
    points : list of (row, col, label), optional
        Clicks: each becomes a disk of 5 pixels, label 1 as class 1 (object), label 0 as
        class 2 (background). While nothing marks the background, a 3-pixel image frame
        does.
    steps : int
        Training steps (batches of crops) for a new network; about 30 a second on two
        CPU cores with the default sizes. More steps fit the scribbles more closely.
    resume_steps : int
        Training steps when the operator runs again on the same image with the same
        settings (after a correcting scribble, say): training then continues from the
        last run's weights, which needs fewer steps than starting over.
    features : bool
        Add ilastik-style filters to the network's input: smoothed colour, gradient
        magnitude, Laplacian of Gaussian and structure-tensor eigenvalues at sigma 1, 2
        and 4. They hand the small network texture and context it would otherwise have
        to learn from few pixels.
    connected : bool
        Keep each class only where it is connected to a scribble of that class; a region
        that is not goes to a class it borders. Right for cutting out one object (a
        look-alike elsewhere in the photo is dropped); wrong for many similar objects
        (cells, coins) of which only some were scribbled.
    smoothness : float
        With two classes, the labels come from a graph cut of the network's probabilities
        that follows colour edges (Boykov-Jolly smoothness of this weight) and keeps every
        scribbled pixel in its class, instead of each pixel's most probable class: fewer
        specks and ragged outlines. 0 turns it off; the probabilities are the network's
        either way. More than two classes always take the most probable class.
    width : int
        Channels of the network's first level (doubled at the next). Wider networks
        fit more complex classes and train and predict more slowly.
    levels : int
        Resolution levels of the U-Net; each halves the resolution and widens the
        context the network sees.
    learning_rate : float
        Adam's step size.
    batch_size : int
        Crops per training step.
    crop_size : int
        Side of the square training crops, in working pixels.
    working_megapixels : float
        Images larger than this (in megapixels) are reduced to about this size for
        training and prediction, and the result is resized back. Larger is sharper at
        boundaries and slower to preview and predict.
    tile_size : int
        Side of the tiles the prediction runs on, in working pixels, when the working
        image is larger than one tile. Smaller tiles need less memory.
    restart : bool
        Forget the network trained on this image before and start from new weights.
    seed : int
        Seed of the initial weights, the crops and the augmentations: the same seed,
        scribbles and settings give the same result from new weights.
    device : {"auto", "cuda", "mps", "cpu"}
        Where to train: "auto" picks a GPU when torch can use one, else the CPU. GPUs run
        in half precision.
    ctx : RunContext, optional
        Progress, previews while training and cancellation.

    Returns
    -------
    Result
        ``outputs["labels"]``: int32 (row, col) class ids of the markers;
        ``outputs["probabilities"]``: float32 (row, col, class), one plane per class in
        increasing id order, summing to 1. Scores: the final training ``loss``,
        ``scribble_accuracy`` (share of scribbled pixels labelled with their class),
        ``steps`` run now, ``total_steps`` trained on this image, ``resumed`` (1 when
        training continued from a cached network), ``seconds``, ``device`` and
        ``working_scale``.
    """
    ctx = ctx or null_context()
    ctx.check()
    started = time.perf_counter()
    image = check_image(image)
    markers = markers_with_clicks(markers, points, image.shape[:2])
    if markers is None:
        raise InputError("the scribble CNN needs scribbles (markers) of at least two classes, or clicks")
    classes = scribble_classes(markers, "the scribble CNN", np.iinfo(np.int32).max)
    torch = import_torch()
    chosen = resolve_device(device)

    ctx.progress(0.0, "Scribble CNN: filters")
    scale = min(1.0, float(np.sqrt(working_megapixels * 1e6 / markers.size)))
    working = _working_image(image, scale)
    targets = _working_targets(markers, classes, working.shape[:2])
    ctx.check()
    stack, gain_power, offset_share = pixel_features(working, with_filters=features, ctx=ctx)
    ctx.check()

    key = (image_key(image), tuple(classes), features, width, levels, working_megapixels, seed, str(chosen))
    with out_of_memory_as_input_error(chosen, "choose a smaller batch, crop or tile size"):
        trainer = _Trainer(torch, chosen, stack, gain_power, offset_share, targets, classes, scale, ctx)
        del stack

        def build() -> _Network:
            inputs = trainer.inputs.shape[0]
            return _new_network(torch, chosen, inputs, len(classes), width, levels, learning_rate, seed)

        with _cached_network(key, restart, ctx, build) as network:
            resumed = network.steps > 0
            network.optimizer.learning_rate = learning_rate
            run_steps = resume_steps if resumed else steps
            loss = trainer.train(network, run_steps, batch_size, crop_size, tile_size, seed, ctx)
            ctx.progress(0.85, "Scribble CNN: predicting")
            probabilities = trainer.predict_image(network.model, tile_size, ctx, (0.85, 0.97))
            total_steps = network.steps
    # The labels follow a graph cut of the probabilities (two classes), or the
    # probabilities themselves.
    cut = smoothness > 0 and len(classes) == 2
    ctx.progress(0.97, "Scribble CNN: graph cut" if cut else "Scribble CNN: labels")
    decided = _cut_two_classes(probabilities, working, targets, smoothness, ctx) if cut else probabilities
    if connected:
        ctx.check()
        decided = _connected_to_scribbles(decided, targets)
        if not cut:
            probabilities = decided  # the constraint rules the other classes out
    # How well the network fits the scribbles (the cut keeps them by construction).
    accuracy = _scribble_accuracy(probabilities, targets)
    if scale < 1.0:
        ctx.check()
        probabilities = _resize(probabilities, markers.shape)
        probabilities /= probabilities.sum(axis=2, keepdims=True)
        ctx.check()
        decided = _resize(decided, markers.shape) if cut else probabilities
    ctx.progress(1.0, "Scribble CNN done")
    scores = {
        "loss": loss,
        "scribble_accuracy": accuracy,
        "steps": float(run_steps),
        "total_steps": float(total_steps),
        "resumed": float(resumed),
        "seconds": time.perf_counter() - started,
        "device": str(chosen),
        "working_scale": scale,
    }
    return Result(
        {"labels": _labels(decided, classes), "probabilities": probabilities},
        iterations=run_steps,
        scores=scores,
        class_ids=tuple(int(value) for value in classes),
    )


# ------------------------------------------------------------------ inputs


def _working_image(image: np.ndarray, scale: float) -> np.ndarray:
    """The image as float32 (row, col, channel) in [0, 1] at the working ``scale``.

    8-bit, 16-bit and float32 images are reduced before the float copy is made, so a
    large photo never has a full-size float copy.
    """
    pixels = image if image.ndim == 2 else image[..., :3]
    if scale < 1.0:
        size = (max(2, round(pixels.shape[1] * scale)), max(2, round(pixels.shape[0] * scale)))
        if pixels.dtype not in (np.uint8, np.uint16, np.float32):
            pixels = to_float(pixels).channels
        pixels = cv2.resize(np.ascontiguousarray(pixels), size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(to_float(pixels).channels)


def _resize(planes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(row, col, channel) float32 resized bilinearly to ``shape``."""
    size = (shape[1], shape[0])
    # OpenCV resizes at most 512 channels at once and drops the axis of a single one.
    pieces = [cv2.resize(planes[..., start : start + 512], size, interpolation=cv2.INTER_LINEAR)
              for start in range(0, planes.shape[2], 512)]
    pieces = [piece[..., None] if piece.ndim == 2 else piece for piece in pieces]
    return np.concatenate(pieces, axis=2) if len(pieces) > 1 else np.ascontiguousarray(pieces[0])


def _working_targets(markers: np.ndarray, classes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Scribbles at the working size: int64 class index 0..N-1, -1 unlabelled.

    A working pixel takes the class that covers most of it, if that covers at least
    :data:`MARKER_COVERAGE` of it; a class that would vanish (a thin stroke on a much
    reduced image) keeps every working pixel it touches.
    """
    targets = np.full(shape, -1, np.int64)
    if shape == markers.shape:
        for index, class_id in enumerate(classes):
            targets[markers == class_id] = index
        return targets
    coverage = np.stack(
        [cv2.resize((markers == class_id).astype(np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
         for class_id in classes],
        axis=2,
    )
    best = coverage.argmax(axis=2)
    share = coverage.max(axis=2)
    targets[share >= MARKER_COVERAGE] = best[share >= MARKER_COVERAGE]
    for index in range(len(classes)):
        if not np.any(targets == index):
            targets[(coverage[..., index] > 0) & (targets < 0)] = index
    return targets


def _input_channels(image_channels: int, with_filters: bool) -> int:
    """Number of input channels :func:`pixel_features` makes for ``image_channels``."""
    if not with_filters:
        return image_channels
    return image_channels * (1 + len(FILTER_SIGMAS)) + 4 * len(FILTER_SIGMAS)


def pixel_features(
    channels: np.ndarray, *, with_filters: bool = True, ctx: RunContext | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network's input channels: the image plus ilastik-style filters.

    Parameters
    ----------
    channels : ndarray
        float32 (row, col, channel) image, channels 1 or 3.
    with_filters : bool
        Add, at each sigma of :data:`FILTER_SIGMAS`: every channel smoothed by a Gaussian,
        and of the luminance (mean of the channels) the gradient magnitude, the Laplacian
        of Gaussian and the two eigenvalues of the structure tensor (gradients at sigma,
        averaged over sigma / 2, as ilastik does).
    ctx : RunContext, optional
        Cancellation, checked after each plane (a tenth of a second or more each on a
        3 MP image).

    Returns
    -------
    stack : ndarray
        float32 (row, col, feature): a view of a C-contiguous (feature, row, col) array,
        so each feature plane is one contiguous block (``stack.transpose(2, 0, 1)`` is
        that array, no copy).
    gain_power : ndarray
        Per feature, the power of a contrast gain that scales it: 1 for intensities and
        derivatives, 2 for structure-tensor eigenvalues (products of derivatives).
    offset_share : ndarray
        Per feature, 1 where a brightness offset adds to it (intensities), 0 for
        derivatives.
    """
    ctx = ctx or null_context()
    # Each plane is written into the stack as soon as it is made: no list of planes beside
    # the stack, and no interleaving copy of the whole stack (2.8 s at 3 MP, which Cancel
    # could not interrupt).
    planes = np.empty((_input_channels(channels.shape[2], with_filters), *channels.shape[:2]), np.float32)
    powers: list[int] = []
    offsets: list[int] = []

    def add(plane: np.ndarray, power: int, offset: int) -> None:
        planes[len(powers)] = plane
        powers.append(power)
        offsets.append(offset)
        ctx.check()

    for c in range(channels.shape[2]):
        add(channels[..., c], 1, 1)
    if with_filters:
        gray = channels.mean(axis=2)
        for sigma in FILTER_SIGMAS:
            for c in range(channels.shape[2]):
                add(cv2.GaussianBlur(channels[..., c], (0, 0), sigma), 1, 1)
            smooth = cv2.GaussianBlur(gray, (0, 0), sigma)
            dx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
            dy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
            add(cv2.magnitude(dx, dy), 1, 0)
            add(cv2.Laplacian(smooth, cv2.CV_32F, ksize=3, scale=0.25), 1, 0)
            outer = sigma / 2
            jxx = cv2.GaussianBlur(dx * dx, (0, 0), outer)
            jyy = cv2.GaussianBlur(dy * dy, (0, 0), outer)
            jxy = cv2.GaussianBlur(dx * dy, (0, 0), outer)
            half_trace = (jxx + jyy) / 2
            spread = np.sqrt(((jxx - jyy) / 2) ** 2 + jxy**2)
            add(half_trace + spread, 2, 0)
            add(half_trace - spread, 2, 0)
    return planes.transpose(1, 2, 0), np.array(powers, np.float32), np.array(offsets, np.float32)


# ------------------------------------------------------------------ the network


@functools.cache
def _unet_class():
    """The U-Net module class (built once, on first use, so torch loads only then)."""
    torch = import_torch()
    nn, functional = torch.nn, torch.nn.functional

    def block(inputs: int, outputs: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(outputs, outputs, 3, padding=1), nn.ReLU(inplace=True),
        )

    class UNet(nn.Module):
        """Encoder of ``levels`` blocks (width doubling, 2x2 max-pooling between them),
        decoder of bilinear upsampling, concatenation with the skip and a block, 1x1 head."""

        def __init__(self, inputs: int, classes: int, width: int, levels: int) -> None:
            super().__init__()
            widths = [width * 2**level for level in range(levels)]
            self.down = nn.ModuleList(block(a, b) for a, b in zip([inputs] + widths[:-1], widths))
            self.up = nn.ModuleList(
                block(widths[level] + widths[level + 1], widths[level]) for level in reversed(range(levels - 1))
            )
            self.head = nn.Conv2d(width, classes, 1)
            self.multiple = 2 ** (levels - 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows, cols = x.shape[-2:]
            # Pad to a multiple of the pooling factor (replicating the border) so any tile fits.
            pad_rows, pad_cols = -rows % self.multiple, -cols % self.multiple
            if pad_rows or pad_cols:
                x = functional.pad(x, (0, pad_cols, 0, pad_rows), mode="replicate")
            skips = []
            for level, down in enumerate(self.down):
                if level:
                    x = functional.max_pool2d(x, 2)
                x = down(x)
                skips.append(x)
            for up, skip in zip(self.up, reversed(skips[:-1])):
                x = functional.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
                x = up(torch.cat([x, skip], dim=1))
            return self.head(x)[..., :rows, :cols]

    return UNet


def _parameter_count(inputs: int, classes: int, width: int, levels: int) -> int:
    """Weights and biases of the U-Net (for the memory estimate; torch not needed)."""
    widths = [width * 2**level for level in range(levels)]

    def block(a: int, b: int) -> int:
        return (9 * a + 1) * b + (9 * b + 1) * b

    total = sum(block(a, b) for a, b in zip([inputs] + widths[:-1], widths))
    total += sum(block(widths[level] + widths[level + 1], widths[level]) for level in range(levels - 1))
    return total + (width + 1) * classes


class _Adam:
    """Adam (Kingma and Ba 2015) over a list of tensors, with torch's default betas and eps.

    Written out because ``torch.optim`` loads torch's compiler stack (``torch._dynamo``)
    on first use, which adds over a second to the first preview of a session.
    """

    def __init__(self, parameters, learning_rate: float, betas=(0.9, 0.999), eps: float = 1e-8) -> None:
        self.parameters = [p for p in parameters if p.requires_grad]
        self.learning_rate = learning_rate
        self.betas, self.eps = betas, eps
        self.moments = [p.detach().new_zeros(p.shape) for p in self.parameters]
        self.squares = [p.detach().new_zeros(p.shape) for p in self.parameters]
        self.count = 0

    def zero_grad(self) -> None:
        """Drop the gradients of the last step (the next backward pass starts afresh)."""
        for parameter in self.parameters:
            parameter.grad = None

    def step(self, loss_scale: float = 1.0, check_finite: bool = False) -> bool:
        """One update from the parameters' gradients of a loss multiplied by ``loss_scale``.

        With ``check_finite`` (half precision), returns False without updating when a
        gradient overflowed, so that no inf or NaN ever reaches the cached weights.
        """
        import torch

        gradients = [p.grad for p in self.parameters if p.grad is not None]
        if check_finite and not all(bool(torch.isfinite(g).all()) for g in gradients):
            return False
        if loss_scale != 1.0:
            for gradient in gradients:
                gradient.div_(loss_scale)
        beta1, beta2 = self.betas
        self.count += 1
        step_size = self.learning_rate / (1 - beta1**self.count)
        root_correction = (1 - beta2**self.count) ** 0.5
        with torch.no_grad():
            for parameter, moment, square in zip(self.parameters, self.moments, self.squares):
                if parameter.grad is None:
                    continue
                gradient = parameter.grad
                moment.mul_(beta1).add_(gradient, alpha=1 - beta1)
                square.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
                denominator = (square.sqrt() / root_correction).add_(self.eps)
                parameter.addcdiv_(moment, denominator, value=-step_size)
        return True


@dataclass
class _Network:
    """A network being trained on one image, with its optimiser and the steps it has had."""

    model: torch.nn.Module
    optimizer: _Adam
    steps: int
    lock: threading.Lock
    #: Loss multiplier that keeps float16 gradients from underflowing (1 in float32).
    loss_scale: float = 1.0


def _new_network(
    torch, device, inputs: int, classes: int, width: int, levels: int, learning_rate: float, seed: int
) -> _Network:
    """A U-Net with He-initialised weights drawn from ``seed`` (a private generator)."""
    model = _unet_class()(inputs, classes, width, levels)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu", generator=generator)
                module.bias.zero_()
    model.to(device)
    loss_scale = INITIAL_LOSS_SCALE if uses_half_precision(device) else 1.0
    return _Network(model, _Adam(model.parameters(), learning_rate), 0, threading.Lock(), loss_scale)


_CACHE: OrderedDict[tuple, _Network] = OrderedDict()
_CACHE_LOCK = threading.Lock()


@contextmanager
def _cached_network(key: tuple, restart: bool, ctx: RunContext, build) -> Iterator[_Network]:
    """The cached network for ``key`` (a new one from ``build()`` if none or ``restart``),
    locked for this run. Waiting for the lock stays cancellable."""
    with _CACHE_LOCK:
        network = None if restart else _CACHE.get(key)
        if network is None:
            network = build()
            _CACHE[key] = network
        _CACHE.move_to_end(key)
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    while not network.lock.acquire(timeout=0.05):
        ctx.check()
    try:
        yield network
    finally:
        network.lock.release()


def clear_cache() -> None:
    """Forget every trained network (frees their memory; the next runs start over)."""
    with _CACHE_LOCK:
        _CACHE.clear()


# ------------------------------------------------------------------ training and prediction


class _Trainer:
    """Crops, augmentations, the loss and predictions for one image at the working size.

    Parameters
    ----------
    torch, device
        The torch module and the device to work on.
    stack, gain_power, offset_share : ndarray
        :func:`pixel_features` of the working image. The stack is standardised in place
        (the trainer takes it over; a stack whose feature planes are not contiguous is
        copied first).
    targets : ndarray
        Working-size scribbles, class index 0..N-1 or -1 (:func:`_working_targets`).
    classes : ndarray
        The class ids, for the labels of previews.
    scale : float
        Working scale, reported with previews.
    ctx : RunContext
        Cancellation, checked after each feature plane is standardised.
    """

    def __init__(self, torch, device, stack, gain_power, offset_share, targets, classes, scale, ctx) -> None:
        self.torch, self.device = torch, device
        self.classes, self.scale = classes, scale
        # One feature plane at a time, in place: a pass over the whole 3 MP stack took
        # 1-2 s that Cancel could not interrupt (and a float64 copy of it); a plane takes
        # a few tens of milliseconds.
        planes = np.ascontiguousarray(stack.transpose(2, 0, 1))
        mean = np.empty(len(planes), np.float32)
        std = np.empty(len(planes), np.float32)
        for index, plane in enumerate(planes):
            mean[index] = plane.mean(dtype=np.float64)
            std[index] = max(float(plane.std(dtype=np.float64)), 1e-6)
            plane -= mean[index]
            plane /= std[index]
            ctx.check()
        #: (feature, row, col) standardised inputs and (row, col) int64 targets on the device.
        self.inputs = torch.from_numpy(planes).to(device)
        self.targets = torch.from_numpy(targets).to(device)
        self.seeds = [np.argwhere(targets == index) for index in range(len(classes))]
        # Contrast gain g and brightness offset b act on raw feature f as
        # g**power * f + offset_share * b; on standardised z = (f - mean) / std that is
        # z * g**power + (g**power - 1) * mean / std + offset_share * b / std. The offset
        # b is drawn in units of the image's own deviation (the mean over its channels).
        self.gain_power = gain_power
        self.mean_over_std = mean / std
        intensity = offset_share > 0
        self.offset_per_std = offset_share * (float(np.mean(std[intensity])) if intensity.any() else 1.0) / std

    def train(self, network: _Network, steps: int, batch_size: int, crop_size: int, tile_size: int, seed: int,
              ctx: RunContext) -> float:
        """Run ``steps`` optimiser steps, previewing as they go; the mean loss of the last ten."""
        rng = np.random.default_rng([seed, network.steps])
        side = min(crop_size, *self.targets.shape)
        model, optimizer = network.model, network.optimizer
        recent: list[float] = []
        training_seconds = preview_seconds = 0.0
        next_preview = FIRST_RESUMED_PREVIEW_STEP if network.steps else FIRST_PREVIEW_STEP
        for step in range(1, steps + 1):
            ctx.check()
            tick = time.perf_counter()
            inputs, targets = self._batch(rng, batch_size, side)
            model.train()
            with autocast(self.device):
                logits = model(inputs)
            loss = self._balanced_loss(logits.float(), targets)
            optimizer.zero_grad()
            (loss * network.loss_scale).backward()
            if not optimizer.step(network.loss_scale, check_finite=uses_half_precision(self.device)):
                # float16 gradients overflowed: skip this batch and scale the loss down.
                network.loss_scale = max(network.loss_scale / 2, 1.0)
            network.steps += 1
            recent = (recent + [float(loss.detach())])[-10:]
            training_seconds += time.perf_counter() - tick
            ctx.progress(0.05 + 0.8 * step / steps, f"Scribble CNN: step {step}/{steps}, loss {recent[-1]:.3f}")
            if ctx.wants_partials and step == next_preview and step < steps:
                tick = time.perf_counter()
                # Cancellable, but the preview's tiles leave the progress bar alone.
                quiet = RunContext(cancel_event=ctx.cancel_event)
                probabilities = self.predict_image(model, tile_size, quiet, (0.0, 1.0))
                ctx.partial(Result(
                    {"labels": _labels(probabilities, self.classes), "probabilities": probabilities},
                    iterations=step,
                    scores={"metric": float(np.mean(recent)), "step": float(step), "working_scale": self.scale},
                ))
                preview_seconds += time.perf_counter() - tick
                # The next preview once previews have cost at most PREVIEW_SHARE of the
                # training time, and PREVIEW_INTERVAL has passed.
                seconds_per_step = training_seconds / step
                wait = max(preview_seconds / PREVIEW_SHARE - training_seconds, PREVIEW_INTERVAL)
                next_preview = step + max(1, int(np.ceil(wait / max(seconds_per_step, 1e-9))))
        return float(np.mean(recent))

    def _batch(self, rng: np.random.Generator, batch_size: int, side: int):
        """Augmented crops (batch, feature, side, side) and their targets (batch, side, side)."""
        torch = self.torch
        rows, cols = self.targets.shape
        pieces, labels = [], []
        for _ in range(batch_size):
            seeds = self.seeds[rng.integers(len(self.seeds))]
            row, col = seeds[rng.integers(len(seeds))]
            # The scribbled pixel lands anywhere in the central half of the crop.
            row = int(np.clip(row - side // 2 + rng.integers(-(side // 4), side // 4 + 1), 0, rows - side))
            col = int(np.clip(col - side // 2 + rng.integers(-(side // 4), side // 4 + 1), 0, cols - side))
            piece = self.inputs[:, row : row + side, col : col + side]
            label = self.targets[row : row + side, col : col + side]
            if rng.random() < 0.5:
                piece, label = piece.flip(-1), label.flip(-1)
            turns = int(rng.integers(4))
            pieces.append(torch.rot90(piece, turns, dims=(1, 2)))
            labels.append(torch.rot90(label, turns, dims=(0, 1)))
        contrast = 1.0 + rng.uniform(-CONTRAST_JITTER, CONTRAST_JITTER, (batch_size, 1))
        brightness = rng.uniform(-BRIGHTNESS_JITTER, BRIGHTNESS_JITTER, (batch_size, 1))
        gain = contrast**self.gain_power
        shift = (gain - 1.0) * self.mean_over_std + brightness * self.offset_per_std

        def as_tensor(values: np.ndarray):
            return torch.from_numpy(values.astype(np.float32))[:, :, None, None].to(self.device)

        return torch.stack(pieces) * as_tensor(gain) + as_tensor(shift), torch.stack(labels)

    def _balanced_loss(self, logits, targets):
        """Cross-entropy over scribbled pixels, averaged per class, then over classes."""
        torch = self.torch
        losses = torch.nn.functional.cross_entropy(logits, targets.clamp(min=0), reduction="none")
        per_class = [losses[targets == index].mean() for index in range(len(self.seeds))
                     if bool((targets == index).any())]
        return torch.stack(per_class).mean()

    def predict_piece(self, model, piece: np.ndarray) -> np.ndarray:
        """Class probabilities (row, col, class) of a (row, col, feature) standardised piece."""
        inputs = self.torch.from_numpy(np.ascontiguousarray(piece.transpose(2, 0, 1)))
        return self._probabilities(model, inputs.to(self.device))

    def predict_image(self, model, tile_size: int, ctx: RunContext, progress: tuple[float, float]) -> np.ndarray:
        """Class probabilities (row, col, class) of the whole working image.

        One pass when it is no larger than a tile, else overlapping blended tiles.
        """
        rows, cols = self.targets.shape
        if rows * cols <= tile_size**2:
            ctx.check()
            return self._probabilities(model, self.inputs)
        features = self.inputs.permute(1, 2, 0).cpu().numpy()
        return predict_tiled(
            functools.partial(self.predict_piece, model), features, tile=tile_size, overlap=TILE_OVERLAP,
            ctx=ctx, progress=progress, message="Scribble CNN: predicting",
        )

    def _probabilities(self, model, inputs) -> np.ndarray:
        torch = self.torch
        model.eval()
        with torch.inference_mode(), autocast(self.device):
            probabilities = torch.softmax(model(inputs[None]).float(), dim=1)[0]
        return np.ascontiguousarray(probabilities.permute(1, 2, 0).cpu().numpy(), dtype=np.float32)


def _labels(probabilities: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """int32 class ids of the most probable class."""
    return classes.astype(np.int32)[np.argmax(probabilities, axis=2)]


def _cut_two_classes(probabilities, working, targets, smoothness: float, ctx: RunContext) -> np.ndarray:
    """One-hot (row, col, 2) float32 labels from a graph cut of two classes' probabilities.

    Each pixel pays ``-log p`` for its label (floored at 1e-4), neighbours pay for
    disagreeing less across colour edges of the working image, scribbled pixels keep
    their class. The max-flow runs in the warm child process
    (:func:`~maskwork.operators.stoppable.call_warm`).
    """
    from maskwork.operators.graph_cut import HARD, binary_cut, grid_edge_weights
    from maskwork.operators.seeds import to_uint8_rgb

    # Stretched as displayed (percentiles), so a 12-bit image in uint16 still has edges.
    colour = to_uint8_rgb(working[..., 0] if working.shape[2] == 1 else working)
    costs = -np.log(np.clip(probabilities, 1e-4, 1.0))
    first_cost = np.where(targets == 0, 0.0, np.where(targets == 1, HARD, costs[..., 0]))
    second_cost = np.where(targets == 1, 0.0, np.where(targets == 0, HARD, costs[..., 1]))
    weights = grid_edge_weights(colour)
    # In the warm child: PyMaxflow's max-flow is one call that holds the GIL (up to 1.3 s
    # at the default 0.3 MP on a loaded core), and the window would stand still.
    first = call_warm(ctx, binary_cut, first_cost, second_cost, weights, smoothness)
    return np.stack([first, ~first], axis=2).astype(np.float32)


def _scribble_accuracy(probabilities: np.ndarray, targets: np.ndarray) -> float:
    """Share of scribbled working pixels whose most probable class is their own."""
    scribbled = targets >= 0
    return float(np.mean(np.argmax(probabilities, axis=2)[scribbled] == targets[scribbled]))


def _connected_to_scribbles(probabilities: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Probabilities in which every class region is connected to a scribble of its class.

    A region is a 4-connected group of pixels whose most probable class is k; it is
    anchored when it holds a scribble of class k. Each connected group of pixels outside
    the anchored regions goes, whole, to the class of an anchored region it borders (of
    those, the one most probable over the group): its probabilities become one-hot for
    that class, the constraint having ruled the others out. Images where no region or
    every region is anchored come back unchanged.
    """
    classes = probabilities.shape[2]
    winner = np.argmax(probabilities, axis=2)
    anchored = np.zeros(winner.shape, bool)
    for index in range(classes):
        count, regions = cv2.connectedComponents((winner == index).astype(np.uint8), connectivity=4)
        holds_scribble = np.zeros(count, bool)
        holds_scribble[regions[(targets == index) & (winner == index)]] = True
        anchored |= holds_scribble[regions]
    if anchored.all() or not anchored.any():
        return probabilities
    count, groups = cv2.connectedComponents((~anchored).astype(np.uint8), connectivity=4)
    cross = cv2.getStructuringElement(cv2.MORPH_CROSS, (3, 3))
    borders = np.zeros((count, classes), bool)
    mass = np.zeros((count, classes))
    for index in range(classes):
        reach = cv2.dilate(((winner == index) & anchored).astype(np.uint8), cross) > 0
        borders[np.unique(groups[reach]), index] = True
        mass[:, index] = np.bincount(groups.ravel(), weights=probabilities[..., index].ravel(), minlength=count)
    chosen = np.argmax(np.where(borders, mass, -1.0), axis=1)
    outside = groups > 0
    probabilities = probabilities.copy()
    probabilities[outside] = 0.0
    probabilities[outside, chosen[groups[outside]]] = 1.0
    return probabilities
