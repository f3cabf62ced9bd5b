"""Segment Anything: an object's mask from a box, clicked points and the previous mask.

Three families of promptable models run here, each recognised from its file:

- **SAM** (``sam_vit_b``, ``sam_vit_l``, ``sam_vit_h``): the official state dicts of
  https://github.com/facebookresearch/segment-anything, or any of that architecture (its
  configuration is read from the shapes of its weights). Needs the ``segment-anything``
  package, of which only the model code (torch alone) is used: its predictor resizes through
  torchvision, which may be missing or, built for another torch, fail to load, so images
  are resized here with OpenCV as SAM's ``ResizeLongestSide`` does.
- **EfficientSAM** (``efficient_sam_vitt``): the publisher's TorchScript file, loaded by
  torch alone; the publisher's smallest encoder (ViT-Tiny), made for interactive speed on
  a CPU (:mod:`maskwork.operators.dl.efficient_sam`).
- **SAM 2 / 2.1** (``sam2.1_hiera_tiny``, ``sam2.1_hiera_base_plus``, ...): the publisher's
  checkpoints, built with the ``sam2`` package's model code
  (:mod:`maskwork.operators.dl.segment_anything_2`).

The ``checkpoint`` parameter takes a catalogue name (``maskwork models list``) or a file.

Every family's image encoder is the slow part (a fraction of a second on a GPU; on a CPU
up to a minute for vit_h, far less for EfficientSAM); each prompt then only runs the
small prompt encoder and mask decoder (milliseconds). The encoding is cached per image,
model file and device, and :func:`prepare_embedding` lets the window compute it in a worker
as soon as the image and the model are known, so the first click is fast too.

Clicks refine: the window passes the mask of the earlier prompts as ``mask``. SAM and SAM 2
take it as a mask prompt (the low-resolution logits the model itself decoded it from, as
SAM's interactive loop does); EfficientSAM has no mask input and uses it to choose among its
candidate masks (see :mod:`~maskwork.operators.dl.efficient_sam`).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import cv2
import numpy as np

from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.dl.device import (
    autocast,
    image_key,
    import_torch,
    out_of_memory_as_input_error,
    resolve_device,
)
from maskwork.operators.dl.prompt_models import (
    Decoded,
    ImageEmbedding,
    PromptModel,
    Prompts,
    mask_to_logits,
    model_prompts,
)
from maskwork.operators.extras import install_command
from maskwork.operators.registry import FilePath, register
from maskwork.operators.seeds import bounding_box, check_image, to_uint8_rgb

if TYPE_CHECKING:  # torch is imported only when the operator runs
    import torch

CHECKPOINT_FILTER = "Segment Anything models (*.pth *.pt)"
#: The model a new user gets: the smallest, made for interactive speed on a CPU.
DEFAULT_MODEL = "efficient_sam_vitt"
#: Catalogue architectures this operator runs.
ARCHITECTURES = ("efficient_sam", "sam", "sam2")
#: The mask decoder's attention heads. The weights do not record them (heads only split
#: a projection), so every checkpoint is read with SAM's own value.
DECODER_HEADS = 8
#: Image embeddings kept (on the model's device): the current image and the one before.
CACHED_EMBEDDINGS = 2
#: Low-resolution logits remembered for the masks last decoded, so that the next click
#: hands the model back its own logits for the previous mask.
REMEMBERED_LOGITS = 8
#: Most attention heads of an official encoder (vit_l, vit_h), for the memory estimate.
MAX_ENCODER_HEADS = 16


def model_help() -> str:
    """How to get a model: the catalogue's Segment Anything names, the default first."""
    from maskwork.core.models import catalogue

    names = [entry.name for entry in catalogue() if entry.architecture in ARCHITECTURES]
    names.sort(key=lambda name: name != DEFAULT_MODEL)
    return (
        f"choose a model by name ({', '.join(names)}; {DEFAULT_MODEL} is the smallest, for a CPU) after downloading "
        "it with Deep learning > Models... or `maskwork models download NAME`, or choose a checkpoint file"
    )


@dataclass(frozen=True)
class SamConfig:
    """The architecture of a SAM model, as :func:`infer_config` reads it from weights.

    Attributes
    ----------
    embed_dim, depth, num_heads : int
        Width, number of blocks and attention heads of the image encoder.
    global_attn_indexes : tuple of int
        Encoder blocks that attend over the whole image (the others use windows).
    image_size, patch_size, window_size : int
        Encoder input side, patch side and attention window, in pixels / patches.
    mlp_ratio : float
        Encoder MLP width over ``embed_dim``.
    prompt_embed_dim, mask_in_chans : int
        Width of prompt embeddings (and of the image embedding), hidden channels of the
        mask-prompt encoder.
    decoder_depth, decoder_mlp_dim, attention_downsample_rate : int
        The mask decoder's two-way transformer.
    multimask_outputs, iou_head_depth, iou_head_hidden_dim : int
        Candidate masks and the head that scores them.
    """

    embed_dim: int
    depth: int
    num_heads: int
    global_attn_indexes: tuple[int, ...]
    image_size: int = 1024
    patch_size: int = 16
    window_size: int = 14
    mlp_ratio: float = 4.0
    prompt_embed_dim: int = 256
    mask_in_chans: int = 16
    decoder_depth: int = 2
    decoder_mlp_dim: int = 2048
    attention_downsample_rate: int = 2
    multimask_outputs: int = 3
    iou_head_depth: int = 3
    iou_head_hidden_dim: int = 256

    @property
    def name(self) -> str:
        """``"vit_b"``, ``"vit_l"`` or ``"vit_h"`` for an official architecture, else ``"custom"``."""
        return next((name for name, config in OFFICIAL_CONFIGS.items() if config == self), "custom")


#: The architectures of SAM's build_sam_vit_b / _l / _h.
OFFICIAL_CONFIGS = {
    "vit_b": SamConfig(embed_dim=768, depth=12, num_heads=12, global_attn_indexes=(2, 5, 8, 11)),
    "vit_l": SamConfig(embed_dim=1024, depth=24, num_heads=16, global_attn_indexes=(5, 11, 17, 23)),
    "vit_h": SamConfig(embed_dim=1280, depth=32, num_heads=16, global_attn_indexes=(7, 15, 23, 31)),
}


# ------------------------------------------------------------------ SAM's model code


_import_lock = threading.Lock()


def import_sam_modeling():
    """``segment_anything.modeling``, even where the package's ``__init__`` cannot run.

    ``segment_anything/__init__.py`` imports the automatic mask generator and the
    predictor, which import torchvision. When torchvision is absent, or present but built
    for another torch ("operator torchvision::nms does not exist"), that import fails
    although the model code needs torch alone. The package module is then created from its
    spec without executing ``__init__`` and registered in ``sys.modules``, which lets
    ``segment_anything.modeling`` import normally beneath it.

    Raises
    ------
    InputError
        When segment-anything is not installed.
    """
    with _import_lock:
        try:
            return importlib.import_module("segment_anything.modeling")
        except Exception as error:  # torchvision fails with ImportError, RuntimeError, ...
            spec = importlib.util.find_spec("segment_anything")
            if spec is None:
                raise InputError(f"the original Segment Anything needs its model code: {install_command(['segment_anything'])}") from None
            if not _caused_by_torchvision(error):
                raise
        sys.modules.pop("segment_anything", None)
        package = importlib.util.module_from_spec(spec)  # the package, its __init__ not run
        sys.modules["segment_anything"] = package
        return importlib.import_module("segment_anything.modeling")


def _caused_by_torchvision(error: BaseException) -> bool:
    if getattr(error, "name", None) and str(error.name).split(".")[0] == "torchvision":
        return True
    if "torchvision" in str(error):
        return True
    frames = []
    traceback = error.__traceback__
    while traceback is not None:
        frames.append(traceback.tb_frame.f_code.co_filename)
        traceback = traceback.tb_next
    return any(f"{os.sep}torchvision{os.sep}" in filename for filename in frames)


# ------------------------------------------------------------------ model files


def model_file(text: str) -> Path:
    """The model file the ``checkpoint`` parameter names: a catalogue name or a path.

    Raises
    ------
    InputError
        When none was chosen, the name is not downloaded (saying how to get it), or the
        file does not exist.
    """
    from maskwork.core.models import ModelNotInstalled, resolve_model

    if not text.strip():
        raise InputError(f"Segment Anything needs a model: {model_help()}")
    try:
        path = resolve_model(text.strip())
    except ModelNotInstalled as error:
        raise InputError(str(error)) from None
    if not path.is_file():
        raise InputError(f"{path} is a folder, not a model file; {model_help()}")
    return path


def read_weights(path: Path) -> Mapping[str, Any]:
    """The weights in a SAM or SAM 2 checkpoint, as CPU tensors.

    Raises
    ------
    InputError
        When torch cannot read the file or it holds no state dict.
    """
    torch = import_torch()
    try:
        # Memory-mapped where the format allows (every file torch saved since 1.6): the
        # tensors are read from disk as they are copied into the model.
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except Exception as error:  # unpickling, zip and format errors have no common base
        raise InputError(f"{path.name} is not a Segment Anything checkpoint: torch cannot read it ({error})") from None
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]  # SAM 2's files and training scripts wrap the weights
    if not isinstance(state, Mapping):
        raise InputError(f"{path.name} is not a Segment Anything checkpoint (it holds no weights); {model_help()}")
    return state


def load_sam(state: Mapping[str, Any], path: Path, model_type: str, device: torch.device):
    """The original SAM whose weights ``state`` holds, on ``device``, and its configuration.

    Raises
    ------
    InputError
        When the weights are not of ``model_type``.
    """
    torch = import_torch()
    modeling = import_sam_modeling()
    config = infer_config(state) if model_type == "auto" else OFFICIAL_CONFIGS[model_type]
    model = build_sam(config, modeling)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError:
        found = infer_config(state).name
        raise InputError(
            f"{path.name} is not a {model_type} checkpoint (its weights are shaped like {found}); "
            "choose model_type auto"
        ) from None
    return model.to(device=device, dtype=torch.float32).eval(), config


class OriginalSam(PromptModel):
    """The original Segment Anything (vit_b, vit_l, vit_h or custom).

    Parameters
    ----------
    sam : segment_anything.modeling.Sam
        The model, in eval mode on ``device``.
    config : SamConfig
        Its architecture.
    device : torch.device
        Where it runs; the encoder runs in half precision on GPUs (:func:`autocast`).
    """

    def __init__(self, sam, config: SamConfig, device: torch.device) -> None:
        self.sam, self.config, self.device, self.name = sam, config, device, config.name

    def encode(self, image: np.ndarray, ctx: RunContext) -> ImageEmbedding:
        """Run SAM's image encoder, block by block (see :func:`_encode`)."""
        return _encode(self.sam, image, self.device, ctx)

    def decode(self, embedding, prompts, previous, previous_logits, multimask) -> Decoded:
        """SAM's mask for the prompts, the previous mask given as a mask prompt."""
        if previous is not None and previous_logits is None:
            previous_logits = mask_to_logits(previous, embedding.input_size, self.config.image_size, self.device)
        return _decode(self.sam, embedding, prompts, previous_logits, multimask)


def read_model(path: Path, model_type: str, device: torch.device) -> PromptModel:
    """The model in ``path``, of whichever family the file holds, on ``device``.

    Raises
    ------
    InputError
        When the file is none of the families, or ``model_type`` names an original SAM
        architecture the file is not.
    """
    from maskwork.operators.dl import efficient_sam, segment_anything_2

    if efficient_sam.is_torchscript(path):
        _require_auto(model_type, path, "EfficientSAM")
        return efficient_sam.load(path, device)
    state = read_weights(path)
    if segment_anything_2.holds_sam2(state):
        _require_auto(model_type, path, "SAM 2")
        return segment_anything_2.load(path, state, device)
    if "image_encoder.patch_embed.proj.weight" in state:
        return OriginalSam(*load_sam(state, path, model_type, device), device)
    raise InputError(
        f"{path.name} is not a Segment Anything checkpoint (it holds no image_encoder weights); {model_help()}"
    )


def _require_auto(model_type: str, path: Path, family: str) -> None:
    if model_type != "auto":
        raise InputError(f"{path.name} is {family}, not a {model_type} checkpoint; choose model_type auto")


_models: dict[tuple, PromptModel] = {}


def loaded_model(path: Path, model_type: str, device: torch.device) -> PromptModel:
    """The model in ``path`` on ``device``, loaded once and kept.

    One model is kept (checkpoints reach 2.5 GB), keyed by the file's path, modification
    time and size, ``model_type`` and ``device``. Callers hold :data:`_lock`.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, model_type, str(device))
    if key not in _models:
        _models.clear()  # free the previous model before reading the next
        _models[key] = read_model(path, model_type, device)
    return _models[key]


def infer_config(state: Mapping[str, Any]) -> SamConfig:
    """The architecture whose weights ``state`` holds, read from their shapes.

    Raises
    ------
    InputError
        When a weight SAM needs is missing or shaped unlike SAM's.
    """

    def count(prefix: str) -> int:
        indexes = {key[len(prefix) :].split(".")[0] for key in state if key.startswith(prefix)}
        return len([index for index in indexes if index.isdigit()])

    try:
        embed_dim, in_channels, patch_size, _ = state["image_encoder.patch_embed.proj.weight"].shape
        grid = state["image_encoder.pos_embed"].shape[1]
        depth = count("image_encoder.blocks.")
        relative = [state[f"image_encoder.blocks.{i}.attn.rel_pos_h"].shape for i in range(depth)]
        head_dim = relative[0][1]
        # Relative positions span 2 * side - 1 entries: the whole grid in global blocks,
        # one window in the others.
        global_blocks = tuple(i for i, shape in enumerate(relative) if shape[0] == 2 * grid - 1)
        windows = [(shape[0] + 1) // 2 for shape in relative if shape[0] != 2 * grid - 1]
        prompt_dim = state["prompt_encoder.no_mask_embed.weight"].shape[1]
        config = SamConfig(
            embed_dim=int(embed_dim),
            depth=depth,
            num_heads=int(embed_dim // head_dim),
            global_attn_indexes=global_blocks,
            image_size=int(grid * patch_size),
            patch_size=int(patch_size),
            window_size=windows[0] if windows else SamConfig.window_size,
            mlp_ratio=state["image_encoder.blocks.0.mlp.lin1.weight"].shape[0] / embed_dim,
            prompt_embed_dim=int(prompt_dim),
            mask_in_chans=int(state["prompt_encoder.mask_downscaling.3.weight"].shape[0]),
            decoder_depth=count("mask_decoder.transformer.layers."),
            decoder_mlp_dim=int(state["mask_decoder.transformer.layers.0.mlp.lin1.weight"].shape[0]),
            attention_downsample_rate=int(
                prompt_dim // state["mask_decoder.transformer.layers.0.cross_attn_token_to_image.q_proj.weight"].shape[0]
            ),
            multimask_outputs=int(state["mask_decoder.mask_tokens.weight"].shape[0]) - 1,
            iou_head_depth=count("mask_decoder.iou_prediction_head.layers."),
            iou_head_hidden_dim=int(state["mask_decoder.iou_prediction_head.layers.0.weight"].shape[0]),
        )
    except (KeyError, IndexError, ValueError, TypeError, ZeroDivisionError) as error:
        raise InputError(f"the checkpoint is not a Segment Anything model: {error} is missing or misshapen") from None
    if in_channels != 3 or depth == 0:
        raise InputError("the checkpoint is not a Segment Anything model: its image encoder is not an RGB ViT")
    return config


def build_sam(config: SamConfig, modeling):
    """An uninitialised SAM of architecture ``config``: its weights are on the meta device.

    The encoder, prompt encoder and decoder are created on the meta device, which costs
    no memory and skips the random initialisation (seconds for vit_h) that a checkpoint
    overwrites anyway; ``load_state_dict(..., assign=True)`` then puts the real weights in.
    The wrapper is built normally, because its pixel mean and std are not in checkpoints.
    """
    torch = import_torch()
    grid = config.image_size // config.patch_size
    with torch.device("meta"):
        encoder = modeling.ImageEncoderViT(
            depth=config.depth,
            embed_dim=config.embed_dim,
            img_size=config.image_size,
            mlp_ratio=config.mlp_ratio,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=config.num_heads,
            patch_size=config.patch_size,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=config.global_attn_indexes,
            window_size=config.window_size,
            out_chans=config.prompt_embed_dim,
        )
        prompt_encoder = modeling.PromptEncoder(
            embed_dim=config.prompt_embed_dim,
            image_embedding_size=(grid, grid),
            input_image_size=(config.image_size, config.image_size),
            mask_in_chans=config.mask_in_chans,
        )
        decoder = modeling.MaskDecoder(
            num_multimask_outputs=config.multimask_outputs,
            transformer=modeling.TwoWayTransformer(
                depth=config.decoder_depth,
                embedding_dim=config.prompt_embed_dim,
                mlp_dim=config.decoder_mlp_dim,
                num_heads=DECODER_HEADS,
                attention_downsample_rate=config.attention_downsample_rate,
            ),
            transformer_dim=config.prompt_embed_dim,
            iou_head_depth=config.iou_head_depth,
            iou_head_hidden_dim=config.iou_head_hidden_dim,
        )
    return modeling.Sam(image_encoder=encoder, prompt_encoder=prompt_encoder, mask_decoder=decoder)


# ------------------------------------------------------------------ image embedding


_embeddings: OrderedDict[str, ImageEmbedding] = OrderedDict()
#: One model load or encoder pass at a time: a second request for the same image waits
#: for the first and then finds its embedding instead of computing it again.
_lock = threading.Lock()
#: (embedding key, digest of a decoded mask) -> that mask's low-resolution logits.
_logits: OrderedDict[str, Any] = OrderedDict()
_logits_lock = threading.Lock()


def resized_shape(rows: int, cols: int, long_side: int) -> tuple[int, int]:
    """(rows, cols) scaled so the longer side is ``long_side`` (SAM's ResizeLongestSide)."""
    scale = long_side / max(rows, cols)
    return int(rows * scale + 0.5), int(cols * scale + 0.5)


def prepare_embedding(
    image: np.ndarray,
    checkpoint: str,
    model_type: str = "auto",
    device: str = "auto",
    ctx: RunContext | None = None,
) -> ImageEmbedding:
    """Compute (or find in the cache) the embedding of ``image``.

    The window calls this in a worker as soon as an image and a model are known, so that
    the first prompt only waits for the decoder.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image of any bit depth.
    checkpoint, model_type, device : str
        As for :func:`segment_anything`.
    ctx : RunContext, optional
        Progress and cancellation.
    """
    return _model_and_embedding(image, checkpoint, model_type, device, ctx or null_context())[1]


def _model_and_embedding(image, checkpoint: str, model_type: str, device: str, ctx: RunContext):
    """The model, the image's embedding and the key that names that embedding."""
    image = check_image(image)
    path = model_file(checkpoint)
    torch_device = resolve_device(device)
    stat = path.stat()
    key = image_key(image, str(path.resolve()), stat.st_mtime_ns, stat.st_size, model_type, str(torch_device))
    while not _lock.acquire(timeout=0.1):
        ctx.check()  # a cancelled request stops waiting for another run's encoder
    try:
        ctx.progress(0.0, "loading Segment Anything")
        model = loaded_model(path, model_type, torch_device)
        if key in _embeddings:
            _embeddings.move_to_end(key)
            return model, replace(_embeddings[key], cached=True), key
        with out_of_memory_as_input_error(torch_device, hint="a smaller model (efficient_sam_vitt, sam_vit_b) needs less"):
            embedding = model.encode(to_uint8_rgb(image), ctx)
        _embeddings[key] = embedding
        while len(_embeddings) > CACHED_EMBEDDINGS:
            _embeddings.popitem(last=False)
        return model, embedding, key
    finally:
        _lock.release()


def _encode(model, image: np.ndarray, device: torch.device, ctx: RunContext) -> ImageEmbedding:
    """Run SAM's image encoder on a uint8 RGB image."""
    torch = import_torch()
    encoder = model.image_encoder
    rows, cols = image.shape[:2]
    input_size = resized_shape(rows, cols, encoder.img_size)
    # Area averaging when shrinking keeps fine texture from aliasing, as the PIL resize
    # SAM was trained with does; bilinear when enlarging.
    interpolation = cv2.INTER_AREA if input_size[0] < rows else cv2.INTER_LINEAR
    resized = cv2.resize(image, (input_size[1], input_size[0]), interpolation=interpolation)
    started = time.perf_counter()
    with torch.inference_mode(), autocast(device):
        pixels = torch.from_numpy(resized).to(device).permute(2, 0, 1)[None].float()
        tokens = encoder.patch_embed(model.preprocess(pixels))  # normalised and padded square
        if encoder.pos_embed is not None:
            tokens = tokens + encoder.pos_embed
        # ImageEncoderViT.forward, one block at a time, so that a cancel takes effect
        # within a block rather than after a whole vit_h pass.
        for index, block in enumerate(encoder.blocks):
            ctx.progress(0.05 + 0.9 * index / len(encoder.blocks), "encoding the image")
            tokens = block(tokens)
        features = encoder.neck(tokens.permute(0, 3, 1, 2)).float()
    if device.type == "cuda":
        torch.cuda.synchronize(device)  # GPU work is asynchronous: time it to its end
    return ImageEmbedding(features, input_size, (rows, cols), time.perf_counter() - started)


# ------------------------------------------------------------------ prompts and decoding


def _decode(model, embedding: ImageEmbedding, prompts: Prompts, mask_logits, multimask: bool) -> Decoded:
    """SAM's mask for the prompts (and the previous mask's logits) at the image's size."""
    torch = import_torch()
    device = embedding.features.device
    with torch.inference_mode():
        points = boxes = None
        if prompts.coords is not None:
            points = (
                torch.as_tensor(prompts.coords[None], device=device),
                torch.as_tensor(prompts.labels[None], device=device),
            )
        if prompts.box is not None:
            boxes = torch.as_tensor(prompts.box[None], device=device)
        sparse, dense = model.prompt_encoder(points=points, boxes=boxes, masks=mask_logits)
        low_res, predicted_iou = model.mask_decoder(
            image_embeddings=embedding.features,
            image_pe=model.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
            multimask_output=multimask,
        )
        best = int(predicted_iou[0].argmax())
        chosen = low_res[:, best : best + 1]
        logits = model.postprocess_masks(chosen, embedding.input_size, embedding.original_size)
        mask = (logits[0, 0] > model.mask_threshold).cpu().numpy()
    return Decoded(mask, float(predicted_iou[0, best]), chosen)


def previous_mask(mask, original_size: tuple[int, int]) -> np.ndarray | None:
    """The ``mask`` input as bool pixels of the image, after checking its size.

    Raises
    ------
    InputError
        When it is not a 2D mask of the image's size.
    """
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != tuple(original_size):
        raise InputError(f"the previous mask is {mask.shape}, but the image is {original_size[0]}x{original_size[1]}")
    return mask != 0


def _mask_key(embedding_key: str, mask: np.ndarray) -> str:
    return image_key(np.packbits(mask), embedding_key, mask.shape)


def _remembered_logits(embedding_key: str, mask: np.ndarray | None):
    """The logits this model decoded ``mask`` from on this image, if it did lately."""
    if mask is None:
        return None
    with _logits_lock:
        return _logits.get(_mask_key(embedding_key, mask))


def _remember_logits(embedding_key: str, decoded: Decoded) -> None:
    if decoded.low_res_logits is None:
        return
    with _logits_lock:
        _logits[_mask_key(embedding_key, decoded.mask)] = decoded.low_res_logits
        while len(_logits) > REMEMBERED_LOGITS:
            _logits.popitem(last=False)


def _estimate_memory(inputs: dict, params: dict) -> int:
    """Bytes for the weights, the encoder's largest attention map and the full-size mask.

    The attention map of a global block holds heads x tokens^2 float32 scores, three
    times over (scores, relative-position terms, softmax); sized for SAM's 16 heads at
    most, since the checkpoint is not read to estimate (an upper bound: EfficientSAM and
    SAM 2 need less).
    """
    height, width = np.shape(inputs["image"])[:2]
    try:
        weights = model_file(params.get("checkpoint", DEFAULT_MODEL)).stat().st_size
    except (InputError, OSError):
        weights = 0  # not downloaded yet: the run itself says so
    tokens = (SamConfig.image_size // SamConfig.patch_size) ** 2
    attention = 3 * MAX_ENCODER_HEADS * tokens**2 * 4
    return weights + attention + height * width * (4 + 1)  # mask logits and the mask


def _prepare(inputs: dict, params: dict, ctx: RunContext) -> None:
    """Encode the image ahead of the first prompt (see ``register(prepare=...)``)."""
    prepare_embedding(inputs["image"], params["checkpoint"], params["model_type"], params["device"], ctx)


@register(
    "segment_anything",
    title="Segment Anything (box / points)",
    category="Deep learning",
    outputs=("mask",),
    requires=("torch",),
    memory_estimate=_estimate_memory,
    prepare=_prepare,
    previous_result_input="mask",
)
def segment_anything(
    image: np.ndarray,
    rect: tuple[int, int, int, int] | None = None,
    points=None,
    mask: np.ndarray | None = None,
    *,
    checkpoint: Annotated[str, FilePath(CHECKPOINT_FILTER)] = DEFAULT_MODEL,
    model_type: Literal["auto", "vit_h", "vit_l", "vit_b"] = "auto",
    multimask: bool = True,
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto",
    ctx: RunContext | None = None,
) -> Result:
    """Segment the object a box and/or clicked points show, with Segment Anything.

    The image is encoded once (the slow part) and the encoding cached, so further
    prompts on the same image answer in milliseconds.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image of any bit depth (deeper images are stretched as they
        are displayed).
    rect : tuple of int, optional
        (x, y, width, height) box around the object.
    points : list of (row, col, label), optional
        Clicks: label 1 on the object, 0 on what is not the object. A box or at least
        one positive point is needed.
    mask : ndarray, optional
        The mask the earlier prompts gave (the window passes it after each click), which
        the new prompts refine.
    checkpoint : str
        The model: a catalogue name (efficient_sam_vitt, the smallest, for a CPU; sam_vit_b,
        sam_vit_l, sam_vit_h; sam2.1_hiera_tiny, sam2.1_hiera_base_plus) once downloaded
        with Deep learning > Models..., or a model file: an official checkpoint of any of
        these or a fine-tuned one of the same architecture.
    model_type : {"auto", "vit_h", "vit_l", "vit_b"}
        The original SAM checkpoint's architecture; auto reads it from the weights (and
        is the only choice for EfficientSAM and SAM 2).
    multimask : bool
        For a single point and no box, which is ambiguous (a part, the object, a group),
        let the model propose three masks and keep the one it scores best; otherwise one
        mask. EfficientSAM always proposes three and keeps the one that fits the clicks
        and the previous mask best.
    device : {"auto", "cuda", "mps", "cpu"}
        Where the model runs; auto takes the preferred device, else the GPU when there is
        one. The encoder runs in half precision on GPUs.

    Returns
    -------
    Result
        ``mask``: bool (row, col). Scores: ``model`` (vit_b, vit_l, vit_h, custom,
        efficient_sam or the SAM 2 configuration), ``predicted_iou`` (the model's estimate
        of the mask's quality), ``embedding_cached``, ``encoder_seconds`` (0 when cached)
        and ``decoder_seconds``.
    """
    ctx = ctx or null_context()
    image = check_image(image)
    original_size = image.shape[:2]
    # Prompts are checked before the encoder runs, so a mistake costs no encoder pass.
    model_prompts(rect, points, original_size, original_size)
    previous = previous_mask(mask, original_size)
    model, embedding, key = _model_and_embedding(image, checkpoint, model_type, device, ctx)
    prompts = model_prompts(rect, points, original_size, embedding.input_size)
    single_point = prompts.box is None and len(prompts.labels) == 1
    ctx.progress(0.95, "decoding the mask")
    started = time.perf_counter()
    decoded = model.decode(embedding, prompts, previous, _remembered_logits(key, previous), multimask and single_point)
    decoder_seconds = time.perf_counter() - started
    _remember_logits(key, decoded)
    box = bounding_box(decoded.mask)
    scores = {
        "model": model.name,
        "predicted_iou": decoded.predicted_iou,
        "embedding_cached": embedding.cached,
        "encoder_seconds": 0.0 if embedding.cached else embedding.encoder_seconds,
        "decoder_seconds": decoder_seconds,
    }
    bounds = None if box is None else (slice(box[0], box[2]), slice(box[1], box[3]))
    return Result({"mask": decoded.mask}, scores=scores, bounds=bounds)
