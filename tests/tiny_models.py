"""Tiny model files the deep-learning tests run: built here, in seconds, on the CPU.

- :func:`bright_pixel_net`: a fixed-weight 1x1 convolution that scores "bright" against
  "dark" from the mean of the RGB channels, so its segmentation is a known threshold.
- :func:`save_tiny_sam`: a randomly initialised Segment Anything with a 2-block,
  32-wide encoder on 512-pixel inputs (16-pixel patches, as SAM), saved as a state dict.
- :func:`save_mean_fill_lama`: a stand-in for LaMa's big-lama.pt with its call
  ``(image, mask) -> inpainted`` that fills the hole with the mean colour around it.
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


class MeanFillLama(torch.nn.Module):
    """LaMa's TorchScript call, ``(image (N,3,H,W), mask (N,1,H,W)) -> inpainted``: the hole
    (mask 1) takes the mean colour of the known pixels, which are returned as they came
    (big-lama composites its prediction the same way)."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        known = 1.0 - mask
        mean = (image * known).sum(dim=(2, 3), keepdim=True) / known.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
        return mask * mean + known * image


def save_mean_fill_lama(path: Path) -> Path:
    """:class:`MeanFillLama` scripted and saved to ``path``, as big-lama.pt is a TorchScript file."""
    return save_torchscript(MeanFillLama(), path)


class TinyPatchEncoder(torch.nn.Module):
    """A random patch embedding: (B, 3, side, side) -> (B, width, side / 16, side / 16)."""

    def __init__(self, side: int, width: int) -> None:
        super().__init__()
        self.img_size = side
        self.proj = torch.nn.Conv2d(3, width, kernel_size=16, stride=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x)


class GeometricEfficientSam(torch.nn.Module):
    """A stand-in for EfficientSAM's TorchScript file: the published methods, arguments,
    attributes and output shapes, with masks of known geometry.

    Candidate masks (at a quarter of ``side``, as EfficientSAM's 256 of 1024) are discs of
    radius ``RADII[k]`` around the positive clicks, cut by discs around negative clicks,
    united with the box (corners labelled 2 and 3): so a test can tell where the prompts
    landed. Token 0 is the single-mask output, tokens 1-3 the multimask candidates;
    ``PREDICTED_IOU`` scores them. Points are given in an ``input_h`` x ``input_w`` frame,
    padded with -1 (label -1) or cut to ``decoder_max_num_input_points``, as published.
    """

    RADII = (6.0, 3.0, 6.0, 12.0)
    PREDICTED_IOU = (0.5, 0.7, 0.9, 0.8)

    def __init__(self, side: int = 128, width: int = 8, max_points: int = 6) -> None:
        super().__init__()
        self.image_encoder = TinyPatchEncoder(side, width)
        self.decoder_max_num_input_points = max_points
        self.register_buffer("pixel_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1), False)
        self.register_buffer("radii", torch.tensor(self.RADII), False)
        self.register_buffer("scores", torch.tensor(self.PREDICTED_IOU), False)

    @torch.jit.export
    def get_image_embeddings(self, batched_images: torch.Tensor) -> torch.Tensor:
        side = self.image_encoder.img_size
        if batched_images.shape[2] != side or batched_images.shape[3] != side:
            batched_images = torch.nn.functional.interpolate(batched_images, (side, side), mode="bilinear")
        return self.image_encoder((batched_images - self.pixel_mean) / self.pixel_std)

    @torch.jit.export
    def predict_masks(
        self,
        image_embeddings: torch.Tensor,
        batched_points: torch.Tensor,
        batched_point_labels: torch.Tensor,
        multimask_output: bool,
        input_h: int,
        input_w: int,
        output_h: int = -1,
        output_w: int = -1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, queries, count, _ = batched_points.shape
        limit = self.decoder_max_num_input_points
        labels = batched_point_labels.to(torch.float32)
        points = batched_points.to(torch.float32)
        if count > limit:
            points, labels = points[:, :, :limit], labels[:, :, :limit]
        elif count < limit:
            points = torch.nn.functional.pad(points, (0, 0, 0, limit - count), value=-1.0)
            labels = torch.nn.functional.pad(labels, (0, limit - count), value=-1.0)
        low_res = self.image_encoder.img_size // 4
        # Into the low-resolution frame: EfficientSAM scales by img_size / input side too.
        x = points[..., 0] * low_res / input_w
        y = points[..., 1] * low_res / input_h
        grid = torch.arange(low_res, dtype=torch.float32, device=points.device) + 0.5
        dx = grid.view(1, 1, 1, 1, low_res) - x[..., None, None]
        dy = grid.view(1, 1, 1, low_res, 1) - y[..., None, None]
        distance = torch.sqrt(dx**2 + dy**2)  # (B, Q, points, h, w)
        far = torch.full_like(distance, 1e6)
        positive = torch.where((labels == 1)[..., None, None], distance, far).amin(dim=2)
        negative = torch.where((labels == 0)[..., None, None], distance, far).amin(dim=2)
        inside_box = torch.zeros_like(positive)
        corners = (labels == 2).nonzero()
        for index in range(corners.shape[0]):
            b, q, first = int(corners[index, 0]), int(corners[index, 1]), int(corners[index, 2])
            x0, y0, x1, y1 = x[b, q, first], y[b, q, first], x[b, q, first + 1], y[b, q, first + 1]
            rows = (grid >= y0) & (grid <= y1 + 1)
            cols = (grid >= x0) & (grid <= x1 + 1)
            inside_box[b, q] = (rows[:, None] & cols[None, :]).to(torch.float32)
        # A tiny share of the embedding, so the encoder's output reaches the masks.
        bias = 1e-6 * image_embeddings.mean()
        radii = self.radii.view(1, 1, -1, 1, 1)
        logits = torch.minimum(radii - positive[:, :, None], negative[:, :, None] - 1.5)
        logits = torch.maximum(logits, 20.0 * inside_box[:, :, None] - 10.0) + bias
        scores = self.scores.view(1, 1, -1).expand(batch, queries, -1)
        if multimask_output:
            logits, scores = logits[:, :, 1:], scores[:, :, 1:]
        else:
            logits, scores = logits[:, :, :1], scores[:, :, :1]
        if output_h > 0 and output_w > 0:
            masks = logits.shape[2]
            logits = torch.nn.functional.interpolate(
                logits.reshape(batch * queries, masks, low_res, low_res), (output_h, output_w), mode="bicubic"
            ).reshape(batch, queries, masks, output_h, output_w)
        return logits, scores

    def forward(
        self,
        batched_images: torch.Tensor,
        batched_points: torch.Tensor,
        batched_point_labels: torch.Tensor,
        scale_to_original_image_size: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        height, width = batched_images.shape[2], batched_images.shape[3]
        return self.predict_masks(
            self.get_image_embeddings(batched_images),
            batched_points,
            batched_point_labels,
            True,
            height,
            width,
            height if scale_to_original_image_size else -1,
            width if scale_to_original_image_size else -1,
        )


def save_tiny_efficient_sam(path: Path, side: int = 128) -> Path:
    """:class:`GeometricEfficientSam` scripted and saved as the publisher saves EfficientSAM
    (``torch.jit.save(torch.jit.script(model), path)``)."""
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(GeometricEfficientSam(side).eval()), str(path))
    return path


def save_tiny_sam2(path: Path, seed: int = 0) -> Path:
    """A random SAM 2.1 of the ``sam2`` package's own classes, scaled down, saved as the
    publisher saves its checkpoints (``{"model": state_dict}``), with its configuration
    beside it (``<stem>.yaml``, as a fine-tuned model brings its training configuration).

    The package's sam2.1_hiera_t configuration with a 16-wide, 5-block Hiera trunk (the
    global-attention block inside the third stage, as published), 32-wide prompt and
    memory features and 128-pixel inputs (SAM 2's are 1024).
    """
    import importlib.util

    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    package = Path(importlib.util.find_spec("sam2").origin).parent
    settings = OmegaConf.load(package / "configs" / "sam2.1" / "sam2.1_hiera_t.yaml")
    model = settings.model
    model.image_size = 128
    trunk, neck = model.image_encoder.trunk, model.image_encoder.neck
    trunk.embed_dim, trunk.stages, trunk.global_att_blocks = 16, [1, 1, 2, 1], [3]
    neck.backbone_channel_list, neck.d_model, neck.position_encoding.num_pos_feats = [128, 64, 32, 16], 32, 32
    attention = model.memory_attention
    attention.d_model, attention.num_layers = 32, 1
    attention.layer.d_model, attention.layer.dim_feedforward = 32, 32
    for block in (attention.layer.self_attention, attention.layer.cross_attention):
        block.embedding_dim, block.feat_sizes = 32, [8, 8]
    attention.layer.cross_attention.kv_in_dim = 16
    encoder = model.memory_encoder
    encoder.out_dim, encoder.position_encoding.num_pos_feats = 16, 16
    encoder.fuser.layer.dim, encoder.fuser.num_layers = 32, 1
    torch.manual_seed(seed)
    sam2 = instantiate(model, _recursive_=True)
    torch.save({"model": sam2.state_dict()}, path)
    OmegaConf.save(settings, path.with_suffix(".yaml"))
    return path
