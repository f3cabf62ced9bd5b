"""SAM 2 and SAM 2.1 on still images, from the publisher's checkpoints.

Checkpoints are those of https://github.com/facebookresearch/sam2 (``sam2.1_hiera_tiny.pt``
... ``sam2.1_hiera_large.pt`` and the SAM 2.0 files): ``{"model": state_dict}``. The model
is built with the ``sam2`` package's model code from the configuration the package ships,
picked by the shapes of the weights (the trunk's width and depth, and whether the weights
have SAM 2.1's additions); a fine-tuned checkpoint whose architecture differs brings its
training configuration beside it as ``<checkpoint>.yaml`` or ``<checkpoint stem>.yaml``.

The package's image predictor is not used: it pre-processes through torchvision, which may
be missing or, built for another torch, fail to load. Its steps are done here with torch
alone: the image resized (bilinear, antialiased, as torchvision's tensor resize) to the
model's square ``image_size`` without keeping the aspect ratio, scaled to [0, 1] and
normalised with ImageNet's mean and std; the backbone's features flattened and given the
"no memory" embedding as on a video's first frame; prompts as (x, y) pixels of that square,
a box as two corner points labelled 2 and 3 before the clicks; the decoder's low-resolution
logits clamped to ±32 and scaled bilinearly to the image; logits above 0 inside. The
previous mask is a mask prompt, as in SAM.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from maskwork.operators.context import InputError, RunContext
from maskwork.operators.dl.device import import_torch, uses_half_precision
from maskwork.operators.dl.prompt_models import Decoded, ImageEmbedding, PromptModel, Prompts, mask_to_logits
from maskwork.operators.extras import install_command

if TYPE_CHECKING:  # torch is imported only when the operator runs
    import torch

#: The publisher's configurations by (trunk width, trunk blocks): tiny, small, base+, large.
OFFICIAL_CONFIGS = {(96, 12): "hiera_t", (96, 16): "hiera_s", (112, 24): "hiera_b+", (144, 48): "hiera_l"}
#: ImageNet's mean and std, with which SAM 2 normalises [0, 1] RGB.
PIXEL_MEAN = (0.485, 0.456, 0.406)
PIXEL_STD = (0.229, 0.224, 0.225)
#: The predictor clamps the decoder's low-resolution logits to this before reusing them.
LOGIT_CLAMP = 32.0
#: What the publisher's ``build_sam2`` adds for its image predictor: when the single mask
#: of a multi-click prompt is unstable, fall back to the best of the multimask outputs.
DECODER_EXTRA_ARGS = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}


def install_hint() -> str:
    """What to install for SAM 2's model code, named for the person's installation."""
    return f"SAM 2 needs its model code: {install_command(['sam2'])} (the sam2 package; torchvision is not needed)"


def holds_sam2(state: Mapping[str, Any]) -> bool:
    """Whether the weights are SAM 2's (a Hiera trunk in the image encoder)."""
    return any(key.startswith("image_encoder.trunk.") for key in state)


def official_config_name(state: Mapping[str, Any]) -> str | None:
    """``"sam2.1_hiera_t"`` ... for the weights of a published architecture, else None."""
    width = int(state["image_encoder.trunk.patch_embed.proj.weight"].shape[0])
    blocks = {key.split(".")[3] for key in state if key.startswith("image_encoder.trunk.blocks.")}
    size = OFFICIAL_CONFIGS.get((width, len(blocks)))
    if size is None:
        return None
    # SAM 2.1 added a spatial "no object" embedding (and other tracking weights).
    version = "sam2.1" if "no_obj_embed_spatial" in state else "sam2"
    return f"{version}_{size}"


def config_file(path: Path, state: Mapping[str, Any]) -> Path:
    """The configuration to build ``path``'s model with: its own beside it, else the
    package's for its architecture.

    Raises
    ------
    InputError
        When the sam2 package is missing, or the architecture is not a published one and
        no configuration lies beside the checkpoint.
    """
    for beside in (path.with_name(path.name + ".yaml"), path.with_suffix(".yaml")):
        if beside.is_file():
            return beside
    name = official_config_name(state)
    if name is None:
        raise InputError(
            f"{path.name} is a SAM 2 model of an unpublished architecture: put its training configuration "
            f"beside it as {path.with_suffix('.yaml').name}"
        )
    import importlib.util

    spec = importlib.util.find_spec("sam2")
    if spec is None or spec.origin is None:
        raise InputError(install_hint())
    return Path(spec.origin).parent / "configs" / name.split("_")[0] / f"{name}.yaml"


def build(config: Path):
    """An untrained SAM2Base from a configuration file (the publisher's hydra format).

    Raises
    ------
    InputError
        When the sam2 package (or hydra) is missing, or the file is not a SAM 2
        configuration.
    """
    try:
        from hydra.utils import instantiate
        from omegaconf import OmegaConf
    except ImportError:
        raise InputError(install_hint()) from None
    try:
        settings = OmegaConf.load(config)
        settings.model.sam_mask_decoder_extra_args = dict(DECODER_EXTRA_ARGS)
        return instantiate(settings.model, _recursive_=True)
    except ImportError:
        raise InputError(install_hint()) from None
    except Exception as error:  # hydra and omegaconf raise their own error types
        raise InputError(f"{config.name} is not a SAM 2 model configuration: {error}") from None


def load(path: Path, state: Mapping[str, Any], device: torch.device) -> Sam2:
    """The SAM 2 model whose weights ``state`` (read from ``path``) holds, on ``device``.

    Raises
    ------
    InputError
        As :func:`config_file` and :func:`build`, or when the weights do not fit the
        configuration.
    """
    torch = import_torch()
    config = config_file(path, state)
    model = build(config)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise InputError(f"{path.name} does not fit the SAM 2 configuration {config.name}: {error}") from None
    return Sam2(model.to(device=device, dtype=torch.float32).eval(), config.stem, device)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bfloat16 on CUDA, as the publisher runs SAM 2 (float16's range is too narrow for
    some of its activations); None (float32) elsewhere, the CPU and Apple's GPU included,
    where bfloat16 is slow or missing."""
    torch = import_torch()
    return torch.bfloat16 if uses_half_precision(device) and device.type == "cuda" else None


class Sam2(PromptModel):
    """A loaded SAM 2 model.

    Parameters
    ----------
    model : sam2.modeling.sam2_base.SAM2Base
        In eval mode on ``device``.
    name : str
        Its configuration's name (``sam2.1_hiera_t``).
    device : torch.device
        Where it runs.
    """

    def __init__(self, model, name: str, device: torch.device) -> None:
        self.model, self.name, self.device = model, name, device
        self.side = int(model.image_size)

    def _autocast(self):
        torch = import_torch()
        dtype = autocast_dtype(self.device)
        return torch.autocast(device_type=self.device.type, dtype=dtype, enabled=dtype is not None)

    def encode(self, image: np.ndarray, ctx: RunContext) -> ImageEmbedding:
        """Run the Hiera encoder and the feature pyramid, checking for Cancel before each
        trunk block (hooks, so the package's own forward runs unchanged)."""
        torch = import_torch()
        model = self.model
        blocks = model.image_encoder.trunk.blocks

        def before_block(index: int):
            def check(_module, _inputs) -> None:
                ctx.check()
                ctx.progress(0.05 + 0.9 * index / len(blocks), "encoding the image")

            return check

        rows, cols = image.shape[:2]
        started = time.perf_counter()
        hooks = [block.register_forward_pre_hook(before_block(index)) for index, block in enumerate(blocks)]
        try:
            with torch.inference_mode(), self._autocast():
                pixels = torch.from_numpy(image).to(self.device).permute(2, 0, 1)[None].float() / 255
                pixels = torch.nn.functional.interpolate(
                    pixels, (self.side, self.side), mode="bilinear", align_corners=False, antialias=True
                )
                mean = torch.tensor(PIXEL_MEAN, device=self.device).view(1, 3, 1, 1)
                std = torch.tensor(PIXEL_STD, device=self.device).view(1, 3, 1, 1)
                backbone = model.forward_image((pixels - mean) / std)
                _, flat, _, sizes = model._prepare_backbone_features(backbone)
                if model.directly_add_no_mem_embed:
                    flat[-1] = flat[-1] + model.no_mem_embed
                # (tokens, 1, channels) -> (1, channels, rows, cols), finest level first.
                levels = [level.permute(1, 2, 0).reshape(1, -1, *size) for level, size in zip(flat, sizes)]
        finally:
            for hook in hooks:
                hook.remove()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)  # GPU work is asynchronous: time it to its end
        features = {"image_embed": levels[-1], "high_res_feats": levels[:-1]}
        return ImageEmbedding(features, (self.side, self.side), (rows, cols), time.perf_counter() - started)

    def decode(self, embedding, prompts: Prompts, previous, previous_logits, multimask) -> Decoded:
        """SAM 2's mask for the prompts, the previous mask given as a mask prompt."""
        torch = import_torch()
        model = self.model
        if previous is not None and previous_logits is None:
            previous_logits = mask_to_logits(previous, embedding.input_size, self.side, self.device)
        coords, labels = prompts.corner_points()
        with torch.inference_mode(), self._autocast():
            points = (
                torch.from_numpy(coords)[None].to(self.device),
                torch.from_numpy(labels.astype(np.int32))[None].to(self.device),
            )
            sparse, dense = model.sam_prompt_encoder(points=points, boxes=None, masks=previous_logits)
            low_res, predicted_iou, _, _ = model.sam_mask_decoder(
                image_embeddings=embedding.features["image_embed"],
                image_pe=model.sam_prompt_encoder.get_dense_pe(),
                sparse_prompt_embeddings=sparse,
                dense_prompt_embeddings=dense,
                multimask_output=multimask,
                repeat_image=False,
                high_res_features=embedding.features["high_res_feats"],
            )
            low_res = low_res.float().clamp(-LOGIT_CLAMP, LOGIT_CLAMP)
            best = int(predicted_iou[0].argmax())
            chosen = low_res[:, best : best + 1]
            full = torch.nn.functional.interpolate(chosen, embedding.original_size, mode="bilinear", align_corners=False)
            mask = (full[0, 0] > 0).cpu().numpy()
        return Decoded(mask, float(predicted_iou[0, best]), chosen)
