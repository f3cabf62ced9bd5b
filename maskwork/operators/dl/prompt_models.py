"""What the Segment Anything family shares: prompts, image embeddings and decoded masks.

Each family (the original SAM, EfficientSAM, SAM 2) is a :class:`PromptModel`: it encodes
an image once (:meth:`PromptModel.encode`) and answers each prompt from that encoding
(:meth:`PromptModel.decode`). :mod:`maskwork.operators.dl.segment_anything` picks the family
from the model file, caches the encoding and runs the operator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from maskwork.operators.context import InputError, NoObjectYet, RunContext
from maskwork.operators.seeds import check_rect

if TYPE_CHECKING:  # torch is imported only when the operator runs
    import torch

#: Logit given to the inside (+) and outside (-) of a previous mask that the model did not
#: make itself (so no logits were remembered for it): sigmoid(10) = 0.99995, a confident
#: mask, as the logits of SAM's own confident predictions are.
MASK_PROMPT_LOGIT = 10.0
#: The mask decoders of SAM and SAM 2 predict masks at a quarter of the encoder's side.
LOW_RES_FACTOR = 4


@dataclass(frozen=True)
class ImageEmbedding:
    """A model's encoding of one image.

    Attributes
    ----------
    features : Any
        What the family's decoder reads: a tensor, or a dict of tensors for SAM 2, on the
        model's device.
    input_size : tuple of int
        (rows, cols) of the image as the encoder saw it (before padding): the frame
        prompts are given in.
    original_size : tuple of int
        (rows, cols) of the image.
    encoder_seconds : float
        How long the encoder took when this embedding was computed.
    cached : bool
        Whether this call found the embedding already computed.
    """

    features: Any
    input_size: tuple[int, int]
    original_size: tuple[int, int]
    encoder_seconds: float
    cached: bool = False


@dataclass(frozen=True)
class Prompts:
    """Prompts in the encoder's frame: (x, y) pixels of the image as the encoder sees it.

    Attributes
    ----------
    coords : ndarray, optional
        (N, 2) float32 point positions, in the order they were clicked.
    labels : ndarray, optional
        (N,) int64: 1 positive, 0 negative.
    box : ndarray, optional
        (4,) float32 corners x0, y0, x1, y1 (the last pixel inside, as SAM's boxes are).
    """

    coords: np.ndarray | None
    labels: np.ndarray | None
    box: np.ndarray | None

    def corner_points(self) -> tuple[np.ndarray, np.ndarray]:
        """The box as two points labelled 2 and 3 (top left, bottom right), then the clicks.

        SAM 2 and EfficientSAM take a box this way; SAM embeds the same corners with the
        same learned corner embeddings through its ``boxes`` argument.
        """
        coords = [] if self.box is None else [self.box.reshape(2, 2)]
        labels = [] if self.box is None else [np.array([2, 3], np.int64)]
        if self.coords is not None:
            coords.append(self.coords)
            labels.append(self.labels)
        return np.concatenate(coords).astype(np.float32), np.concatenate(labels)


@dataclass(frozen=True)
class Decoded:
    """A decoded mask.

    Attributes
    ----------
    mask : ndarray
        bool (rows, cols) at the image's size.
    predicted_iou : float
        The model's estimate of the mask's quality.
    low_res_logits : torch.Tensor, optional
        (1, 1, side, side) logits of the mask in the decoder's own frame, which a family
        with a mask prompt takes back to refine it; None for a family without one.
    """

    mask: np.ndarray
    predicted_iou: float
    low_res_logits: Any = None


class PromptModel(ABC):
    """A loaded model of one Segment Anything family, on one device.

    Attributes
    ----------
    name : str
        What the operator reports as its ``model`` score (``vit_b``, ``efficient_sam``,
        ``sam2.1_hiera_t``, ``custom``).
    device : torch.device
        Where it runs.
    """

    name: str
    device: torch.device

    @abstractmethod
    def encode(self, image: np.ndarray, ctx: RunContext) -> ImageEmbedding:
        """Encode a uint8 RGB (rows, cols, 3) image (the slow part), checking ``ctx`` for Cancel."""

    @abstractmethod
    def decode(
        self,
        embedding: ImageEmbedding,
        prompts: Prompts,
        previous: np.ndarray | None,
        previous_logits: Any,
        multimask: bool,
    ) -> Decoded:
        """The mask for ``prompts`` on the encoded image.

        Parameters
        ----------
        embedding : ImageEmbedding
            This model's encoding of the image.
        prompts : Prompts
            In ``embedding.input_size``'s frame.
        previous : ndarray, optional
            bool (rows, cols): the mask the earlier prompts gave, to refine.
        previous_logits : torch.Tensor, optional
            The low-resolution logits this model decoded ``previous`` from, when it did.
        multimask : bool
            Let the model propose several masks and keep its best.
        """


def model_prompts(rect, points, original_size: tuple[int, int], input_size: tuple[int, int]) -> Prompts:
    """Check the box and points and map them into the encoder's frame.

    Parameters
    ----------
    rect : tuple of int, optional
        (x, y, width, height) box in image pixels.
    points : sequence of (row, col, label), optional
        Clicked points; label 1 positive, 0 negative.
    original_size, input_size : tuple of int
        (rows, cols) of the image and of its resized copy.

    Raises
    ------
    InputError
        When there is neither a box nor a positive point, or a prompt is malformed or
        outside the image.
    """
    rows, cols = original_size
    scale = np.array([input_size[1] / cols, input_size[0] / rows], np.float32)  # x, y
    rect = check_rect(rect, original_size)
    box = None
    if rect is not None:
        x, y, width, height = rect
        box = (np.array([x, y, x + width - 1, y + height - 1], np.float32).reshape(2, 2) * scale).ravel()
    coords = labels = None
    table = np.zeros((0, 3))
    if points is not None and len(points):
        try:
            table = np.asarray(points, dtype=np.float64).reshape(len(points), 3)
        except (TypeError, ValueError):
            raise InputError(f"points are (row, col, label) triples, got {points!r}") from None
        for row, col, label in table:
            if not (0 <= row < rows and 0 <= col < cols):
                raise InputError(f"the point at row {row:g}, col {col:g} lies outside the {rows}x{cols} image")
            if label not in (0, 1):
                raise InputError(f"a point's label is 1 (positive) or 0 (negative), got {label:g}")
        coords = (table[:, [1, 0]] * scale).astype(np.float32)
        labels = table[:, 2].astype(np.int64)
    if box is None and not np.any(table[:, 2] == 1):
        raise NoObjectYet("Segment Anything needs a prompt: draw a box or click a positive point on the object")
    return Prompts(coords, labels, box)


def resize_mask(mask: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """A bool mask resized to (rows, cols) as a float32 fraction of each new pixel inside."""
    shrinking = rows * cols < mask.shape[0] * mask.shape[1]
    return cv2.resize(
        mask.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    )


def mask_to_logits(mask: np.ndarray, input_size: tuple[int, int], encoder_side: int, device) -> torch.Tensor:
    """A bool mask as the (1, 1, side / 4, side / 4) logits SAM and SAM 2 take as a mask prompt.

    The mask is resized into the encoder's frame (the image resized to ``input_size`` and
    padded to an ``encoder_side`` square at the bottom and right, as the image is), brought
    down to the decoder's quarter resolution, and given ±:data:`MASK_PROMPT_LOGIT`.
    """
    from maskwork.operators.dl.device import import_torch

    torch = import_torch()
    framed = np.zeros((encoder_side, encoder_side), np.float32)
    framed[: input_size[0], : input_size[1]] = resize_mask(mask, *input_size)
    side = encoder_side // LOW_RES_FACTOR
    low_res = cv2.resize(framed, (side, side), interpolation=cv2.INTER_AREA)
    logits = np.where(low_res >= 0.5, MASK_PROMPT_LOGIT, -MASK_PROMPT_LOGIT).astype(np.float32)
    return torch.from_numpy(logits)[None, None].to(device)
