"""Tiny model files the deep-learning tests run: built here, in seconds, on the CPU.

- :func:`bright_pixel_net`: a fixed-weight 1x1 convolution that scores "bright" against
  "dark" from the mean of the RGB channels, so its segmentation is a known threshold.
- :func:`save_tiny_sam`: a randomly initialised Segment Anything with a 2-block,
  32-wide encoder on 512-pixel inputs (16-pixel patches, as SAM), saved as a state dict.
"""

from __future__ import annotations

from pathlib import Path

import torch

#: Mean RGB value in [0, 1] above which :func:`bright_pixel_net` calls a pixel bright.
BRIGHT_LEVEL = 0.5
#: Logit per unit of mean brightness: steep, so the probabilities are near 0 or 1 away
#: from the threshold while staying finite.
STEEPNESS = 40.0


class BrightPixelNet(torch.nn.Module):
    """Scores (dark, bright) per pixel: ±STEEPNESS * (mean(r, g, b) - BRIGHT_LEVEL)."""

    def __init__(self, in_channels: int = 3) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(in_channels, 2, kernel_size=1)
        with torch.no_grad():
            weight = STEEPNESS / in_channels
            self.conv.weight.copy_(torch.tensor([[-weight], [weight]]).repeat(1, in_channels).view(2, in_channels, 1, 1))
            self.conv.bias.copy_(torch.tensor([STEEPNESS * BRIGHT_LEVEL, -STEEPNESS * BRIGHT_LEVEL]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def bright_pixel_net(in_channels: int = 3) -> BrightPixelNet:
    """The fixed-weight network, in eval mode."""
    return BrightPixelNet(in_channels).eval()


def save_torchscript(module: torch.nn.Module, path: Path) -> Path:
    """``module`` scripted and saved to ``path``."""
    torch.jit.script(module).save(str(path))
    return path


def save_onnx(module: torch.nn.Module, path: Path, in_channels: int = 3) -> Path:
    """``module`` exported to ONNX with free height and width (torch.export-based exporter).

    torch 2.13's default exporter goes through torch.export and onnxscript; free sides
    are declared with ``dynamic_shapes`` so tiles of any size run.
    """
    example = torch.rand(1, in_channels, 64, 80)
    side = {2: torch.export.Dim("height", min=2, max=8192), 3: torch.export.Dim("width", min=2, max=8192)}
    torch.onnx.export(
        module, (example,), str(path), input_names=["image"], output_names=["scores"],
        dynamic_shapes={"x": side}, verbose=False,
    )
    return path


def save_tiny_sam(path: Path, seed: int = 0) -> Path:
    """A random 2-block Segment Anything saved as a state dict at ``path``.

    One windowed and one global encoder block, 2 heads, 32-wide prompt embeddings, a
    narrow decoder and 512-pixel inputs (SAM's are 1024; a quarter of the tokens makes the
    global block's attention 16 times cheaper): the architecture of vit_b scaled down,
    which only a loader that reads the configuration from the weights can rebuild.
    """
    from functools import partial

    from maskwork.operators.dl.segment_anything import DECODER_HEADS, import_sam_modeling

    modeling = import_sam_modeling()
    torch.manual_seed(seed)
    width, size = 32, 512
    grid = size // 16
    sam = modeling.Sam(
        image_encoder=modeling.ImageEncoderViT(
            depth=2, embed_dim=width, img_size=size, mlp_ratio=4, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=2, patch_size=16, qkv_bias=True, use_rel_pos=True, global_attn_indexes=(1,),
            window_size=14, out_chans=width,
        ),
        prompt_encoder=modeling.PromptEncoder(
            embed_dim=width, image_embedding_size=(grid, grid), input_image_size=(size, size), mask_in_chans=16
        ),
        mask_decoder=modeling.MaskDecoder(
            num_multimask_outputs=3,
            transformer=modeling.TwoWayTransformer(depth=2, embedding_dim=width, mlp_dim=64, num_heads=DECODER_HEADS),
            transformer_dim=width, iou_head_depth=3, iou_head_hidden_dim=width,
        ),
    )
    with torch.no_grad():  # random relative positions, which SAM initialises to zero
        for name, parameter in sam.named_parameters():
            if "rel_pos" in name:
                parameter.normal_(0, 0.02)
    torch.save(sam.state_dict(), path)
    return path
