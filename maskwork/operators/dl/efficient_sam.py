"""EfficientSAM: Segment Anything with a ViT-Tiny encoder, from its publisher's TorchScript file.

The file is ``efficient_sam_vitt_torchscript.pt`` of https://github.com/yformer/EfficientSAM
(``torch.jit.script`` of the whole model, saved with ``torch.jit.save``), so torch alone
runs it. The scripted model exports what is needed to encode once and decode per prompt:

- ``get_image_embeddings(images)``: (B, 3, H, W) RGB in [0, 1]; resized (bilinearly,
  without keeping the aspect ratio) to the encoder's square ``image_encoder.img_size``
  (1024), normalised with its ``pixel_mean`` / ``pixel_std`` (ImageNet's); returns
  (B, 256, 64, 64).
- ``predict_masks(embeddings, points, labels, multimask_output, input_h, input_w,
  output_h, output_w)``: points (B, queries, n, 2) as (x, y) pixels of an
  ``input_h`` x ``input_w`` image, labels (B, queries, n): 1 positive, 0 negative, 2 and 3
  a box's top-left and bottom-right corners, -1 padding. At most
  ``decoder_max_num_input_points`` (6) points are read; the rest are cut off. Returns
  logits (B, queries, masks, h, w), at 256 x 256 when ``output_h`` / ``output_w`` are -1,
  and predicted IoUs (B, queries, masks). A logit of 0 or more is inside.

The image is resized here to the square the encoder takes, so the model's own resize is a
no-op: bilinearly when enlarging, as the model would (a tiny model of the publisher's own
classes, scripted as they script it, gave the same masks as its own forward pass), and by
area averaging when shrinking, where the model's bilinear resize would alias a large photo.

EfficientSAM has no mask prompt. Clicks still refine: every click after the first comes
with the previous mask, and of the three candidate masks the decoder proposes, the one kept
is the one that agrees with the most clicks (positive inside, negative outside), then the
one that overlaps the previous mask most (a click corrects a mask; it does not start over),
and without a previous mask the one the model scores best. Only the newest clicks that fit
beside the box reach the decoder (6 points in all); older ones still count in that choice.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from maskwork.operators.context import InputError, RunContext
from maskwork.operators.dl.device import import_torch, uses_half_precision
from maskwork.operators.dl.prompt_models import Decoded, ImageEmbedding, PromptModel, Prompts, resize_mask

if TYPE_CHECKING:  # torch is imported only when the operator runs
    import torch

#: Methods the publisher's TorchScript file exports, which this module calls.
EXPORTED_METHODS = ("get_image_embeddings", "predict_masks")
#: Logits at or above this are inside (the publisher's example thresholds with ``ge(0)``).
MASK_THRESHOLD = 0.0


def is_torchscript(path: Path) -> bool:
    """Whether ``path`` is a TorchScript archive (code and constants beside the weights).

    ``torch.save`` writes a zip too, but only TorchScript archives hold ``code/`` and
    ``constants.pkl``.
    """
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names)


def encoder_dtype(device: torch.device) -> torch.dtype:
    """float16 for the encoder on GPUs (half the memory, twice the speed), else float32.

    Only the encoder: the scripted decoder casts its point coordinates to float32 before
    multiplying them with its own weights, so it stays in float32.
    """
    torch = import_torch()
    return torch.float16 if uses_half_precision(device) else torch.float32


def load(path: Path, device: torch.device) -> EfficientSam:
    """The EfficientSAM TorchScript model in ``path`` on ``device``.

    Raises
    ------
    InputError
        When torch cannot load the file or it is a TorchScript model of something else.
    """
    torch = import_torch()
    try:
        decoder = torch.jit.load(str(path), map_location=device).eval()
    except Exception as error:  # TorchScript reports format errors as RuntimeError and others
        raise InputError(f"{path.name} is not an EfficientSAM model: torch cannot load it ({error})") from None
    missing = [name for name in EXPORTED_METHODS if not hasattr(decoder, name)]
    if missing:
        raise InputError(
            f"{path.name} is a TorchScript model but not EfficientSAM (it has no {', '.join(missing)}); "
            "choose efficient_sam_vitt_torchscript.pt from github.com/yformer/EfficientSAM"
        )
    dtype = encoder_dtype(device)
    # A second copy for the encoder when it runs in half precision (the weights are 10 MB
    # for ViT-Tiny): a scripted module converts as a whole, and the decoder must not.
    encoder = decoder if dtype == torch.float32 else torch.jit.load(str(path), map_location=device).to(dtype).eval()
    return EfficientSam(encoder, decoder, device, dtype)


class EfficientSam(PromptModel):
    """A loaded EfficientSAM TorchScript model.

    Parameters
    ----------
    encoder, decoder : torch.jit.ScriptModule
        The model whose ``get_image_embeddings`` and whose ``predict_masks`` run (the same
        module unless the encoder runs in half precision).
    device : torch.device
        Where both run.
    dtype : torch.dtype
        The encoder's precision (see :func:`encoder_dtype`).
    """

    name = "efficient_sam"

    def __init__(self, encoder, decoder, device: torch.device, dtype: torch.dtype) -> None:
        self.encoder, self.decoder, self.device, self.dtype = encoder, decoder, device, dtype
        self.side = int(decoder.image_encoder.img_size)
        self.max_points = int(decoder.decoder_max_num_input_points)

    def encode(self, image: np.ndarray, ctx: RunContext) -> ImageEmbedding:
        """Encode the image resized to the encoder's square (one scripted call: Cancel is
        checked before and after it, not within)."""
        torch = import_torch()
        ctx.check()
        ctx.progress(0.05, "encoding the image")
        rows, cols = image.shape[:2]
        shrinking = self.side < max(rows, cols)
        # Resized in [0, 1] floats, as the publisher's model resizes its input tensor
        # (rounding back to uint8 would move the result off theirs).
        resized = cv2.resize(
            image.astype(np.float32) / 255,
            (self.side, self.side),
            interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
        )
        started = time.perf_counter()
        with torch.inference_mode():
            pixels = torch.from_numpy(resized).to(self.device).permute(2, 0, 1)[None].to(self.dtype)
            features = self.encoder.get_image_embeddings(pixels).float()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # GPU work is asynchronous: time it to its end
        ctx.check()
        return ImageEmbedding(features, (self.side, self.side), (rows, cols), time.perf_counter() - started)

    def decode(self, embedding, prompts: Prompts, previous, previous_logits, multimask) -> Decoded:
        """The candidate that fits the clicks and the previous mask best (see the module)."""
        torch = import_torch()
        coords, labels = self.decoder_points(prompts)
        with torch.inference_mode():
            logits, predicted_iou = self.decoder.predict_masks(
                embedding.features,
                torch.from_numpy(coords)[None, None].to(self.device),
                torch.from_numpy(labels)[None, None].to(self.device),
                True,
                self.side,
                self.side,
                -1,
                -1,
            )
            candidates = logits[0, 0]  # (masks, 256, 256)
            best = choose_candidate(
                (candidates >= MASK_THRESHOLD).cpu().numpy(),
                predicted_iou[0, 0].float().cpu().numpy(),
                prompts,
                self.side,
                previous,
            )
            # Bicubic, as the publisher's own forward scales the logits to the image.
            full = torch.nn.functional.interpolate(candidates[None, best : best + 1], embedding.original_size, mode="bicubic")
            mask = (full[0, 0] >= MASK_THRESHOLD).cpu().numpy()
        return Decoded(mask, float(predicted_iou[0, 0, best]))

    def decoder_points(self, prompts: Prompts) -> tuple[np.ndarray, np.ndarray]:
        """(n, 2) float32 points and (n,) int64 labels for ``predict_masks``: the box's
        corners, then the newest clicks that fit within the decoder's point limit."""
        coords, labels = prompts.corner_points()
        corners = 0 if prompts.box is None else 2
        clicks = max(self.max_points - corners, 0)
        keep = np.r_[np.arange(corners), np.arange(max(corners, len(labels) - clicks), len(labels))]
        return coords[keep], labels[keep]


def choose_candidate(
    candidates: np.ndarray, predicted_iou: np.ndarray, prompts: Prompts, side: int, previous: np.ndarray | None
) -> int:
    """The index of the candidate mask to keep.

    Parameters
    ----------
    candidates : ndarray
        bool (masks, h, w) in the decoder's frame: the encoder's ``side`` square, scaled.
    predicted_iou : ndarray
        (masks,) the model's scores.
    prompts : Prompts
        In the ``side`` x ``side`` frame; every click counts, also those the decoder did
        not read.
    side : int
        The encoder's input side.
    previous : ndarray, optional
        bool (rows, cols) mask of the image that the earlier prompts gave.

    Returns
    -------
    int
        The candidate agreeing with the most clicks; among those, the one overlapping
        ``previous`` most (intersection over union), or without ``previous`` the one
        the model scores best.
    """
    count, height, width = candidates.shape
    agreeing = np.zeros(count)
    if prompts.coords is not None:
        cols = np.clip((prompts.coords[:, 0] * width / side).astype(int), 0, width - 1)
        rows = np.clip((prompts.coords[:, 1] * height / side).astype(int), 0, height - 1)
        inside = candidates[:, rows, cols]  # (masks, clicks)
        agreeing = (inside == (prompts.labels == 1)).sum(axis=1)
    if previous is None:
        closeness = predicted_iou
    else:
        before = resize_mask(previous, height, width) >= 0.5
        union = (candidates | before).sum(axis=(1, 2))
        closeness = (candidates & before).sum(axis=(1, 2)) / np.maximum(union, 1)
    return int(np.lexsort((closeness, agreeing))[-1])
