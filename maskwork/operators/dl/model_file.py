"""Run a segmentation model the person brings: a TorchScript or an ONNX file.

The model maps an NCHW float32 batch to per-pixel class scores of the same height and
width, (N, classes, H, W) (a (N, H, W) output counts as one channel). maskwork feeds it
tiles of the image (:func:`~maskwork.operators.dl.device.predict_tiled`), turns the scores
into probabilities and blends the tiles without seams.

Sidecar
-------
What the model expects is read from a small JSON file next to it, ``<model>.json``
(``unet.onnx.json``) or ``<model-stem>.json`` (``unet.json``). Every key is optional::

    {
      "input_size": 512,             # tile side the model was made for, or [height, width]
      "fixed_size": false,           # true: the model accepts only input_size; smaller
                                     #   tiles are padded (mirrored) and the output cropped
      "multiple_of": 32,             # tile sides are padded up to a multiple of this
                                     #   (a U-Net with five poolings needs 32)
      "channels": "rgb",             # "rgb", "bgr" (colour order swapped) or "gray" (luminance)
      "scale": 1.0,                  # pixels are first mapped to [0, 1] (integers divided
                                     #   by their type's maximum), then multiplied by scale
      "mean": [0.485, 0.456, 0.406], # subtracted after scaling: one number or one per channel
      "std": [0.229, 0.224, 0.225],  # then divided by: one number or one per channel
      "activation": "softmax",       # "softmax" over the channels, "sigmoid" per channel, or
                                     #   "none" when the model already outputs probabilities
      "classes": ["background", "cell"]  # one name per label value
    }

Without a sidecar the model gets RGB in [0, 1]; several output channels go through a
softmax, a single channel through a sigmoid (foreground probability). An ONNX model that
declares a fixed input height and width runs on tiles of that size, and one that declares
a channel count gets gray or RGB to match, sidecar or not.
"""

from __future__ import annotations

import json
import os
import threading
import zipfile
from collections import OrderedDict
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np

from maskwork.core.pixels import gray_to_rgb, luminance, to_float
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.dl.device import (
    autocast,
    format_bytes,
    import_torch,
    out_of_memory_as_input_error,
    predict_tiled,
    resolve_device,
    tile_starts,
)
from maskwork.operators.extras import import_optional
from maskwork.operators.registry import Display, FilePath, InfoAction, Range, register
from maskwork.operators.seeds import check_image

if TYPE_CHECKING:  # torch is imported only when a model runs
    import torch

MODEL_FILTER = "Segmentation models (*.pt *.pth *.ts *.torchscript *.onnx)"
#: Tile side when neither the parameter nor the sidecar nor the model says otherwise.
DEFAULT_TILE = 512
#: Loaded models kept in memory, most recent first: re-running on a new image or with new
#: parameters should not reload the file.
CACHED_MODELS = 2
#: float32 values per tile pixel a typical segmentation network (a U-Net with 32 base
#: channels: skip connections plus the widest decoder map) holds at its peak; a rough
#: figure for the memory estimate, since the architecture is unknown before loading.
ACTIVATIONS_PER_PIXEL = 256

SIDECAR_KEYS = ("input_size", "fixed_size", "multiple_of", "channels", "scale", "mean", "std", "activation", "classes")
CHANNEL_MODES = ("rgb", "bgr", "gray")
ACTIVATIONS = ("softmax", "sigmoid", "none")
#: Ends the message of a model that fails on its input, which usually means a sidecar is
#: missing or wrong.
SIDECAR_HINT = "a JSON sidecar beside the model sets its channels, input size and normalisation"


@dataclass(frozen=True)
class ModelSettings:
    """What a model expects, from its sidecar (see the module docstring) and defaults.

    Attributes
    ----------
    input_size : tuple of int, optional
        (height, width) the model was made for.
    fixed_size : bool
        Whether the model accepts only ``input_size``.
    multiple_of : int
        Tile sides are padded up to a multiple of this.
    channels : str, optional
        ``"rgb"``, ``"bgr"`` or ``"gray"``; None when neither the sidecar nor the model
        says, which means RGB.
    scale : float
        Factor applied to pixels in [0, 1].
    mean, std : tuple of float
        Normalisation after scaling: one value or one per channel.
    activation : str, optional
        ``"softmax"``, ``"sigmoid"`` or ``"none"``; None picks by the output channel count.
    classes : tuple of str, optional
        One name per label value.
    sidecar : str, optional
        File name of the sidecar these settings came from.
    """

    input_size: tuple[int, int] | None = None
    fixed_size: bool = False
    multiple_of: int = 1
    channels: str | None = None
    scale: float = 1.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    activation: str | None = None
    classes: tuple[str, ...] | None = None
    sidecar: str | None = None

    @property
    def input_channels(self) -> int:
        """Channels the model is fed."""
        return 1 if self.channels == "gray" else 3


# ------------------------------------------------------------------ the sidecar


def sidecar_path(model: Path) -> Path | None:
    """The sidecar of ``model``: ``<model>.json`` or else ``<model-stem>.json``, if present."""
    for candidate in (model.with_name(model.name + ".json"), model.with_suffix(".json")):
        if candidate.is_file():
            return candidate
    return None


def read_settings(model: Path) -> ModelSettings:
    """The settings of ``model``: its sidecar's, or the defaults when it has none.

    Raises
    ------
    InputError
        When the sidecar is not valid JSON or holds an unknown key or a bad value.
    """
    path = sidecar_path(model)
    if path is None:
        return ModelSettings()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"the model's sidecar {path.name} cannot be read as JSON: {error}") from None
    return _parse_sidecar(data, path.name)


def _parse_sidecar(data: Any, name: str) -> ModelSettings:
    def bad(key: str, expected: str) -> InputError:
        return InputError(f"in the sidecar {name}, {key!r} must be {expected}; got {data[key]!r}")

    def whole(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)  # JSON true is no number

    def number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and np.isfinite(value)

    if not isinstance(data, dict):
        raise InputError(f"the sidecar {name} must hold a JSON object ({{\"key\": value, ...}})")
    unknown = sorted(set(data) - set(SIDECAR_KEYS))
    if unknown:
        raise InputError(f"the sidecar {name} has unknown key(s) {', '.join(unknown)}; known: {', '.join(SIDECAR_KEYS)}")
    values: dict[str, Any] = {"sidecar": name}
    if "input_size" in data:
        size = data["input_size"]
        sides = [size, size] if whole(size) else size
        if not (isinstance(sides, list) and len(sides) == 2 and all(whole(side) and side >= 16 for side in sides)):
            raise bad("input_size", "a whole number of pixels (at least 16) or [height, width]")
        values["input_size"] = (sides[0], sides[1])
    if "fixed_size" in data:
        if not isinstance(data["fixed_size"], bool):
            raise bad("fixed_size", "true or false")
        if data["fixed_size"] and "input_size" not in data:
            raise InputError(f"the sidecar {name} says fixed_size but gives no input_size")
        values["fixed_size"] = data["fixed_size"]
    if "multiple_of" in data:
        if not (whole(data["multiple_of"]) and 1 <= data["multiple_of"] <= 1024):
            raise bad("multiple_of", "a whole number from 1 to 1024")
        values["multiple_of"] = data["multiple_of"]
    if "channels" in data:
        if data["channels"] not in CHANNEL_MODES:
            raise bad("channels", " or ".join(f'"{mode}"' for mode in CHANNEL_MODES))
        values["channels"] = data["channels"]
    if "scale" in data:
        if not (number(data["scale"]) and data["scale"] > 0):
            raise bad("scale", "a positive number")
        values["scale"] = float(data["scale"])
    for key in ("mean", "std"):
        if key in data:
            entries = data[key] if isinstance(data[key], list) else [data[key]]
            if not (entries and all(number(v) for v in entries)) or key == "std" and min(entries) <= 0:
                raise bad(key, "a number or a list of numbers" + (" above 0" if key == "std" else ""))
            values[key] = tuple(float(v) for v in entries)
    if "activation" in data:
        if data["activation"] not in ACTIVATIONS:
            raise bad("activation", " or ".join(f'"{a}"' for a in ACTIVATIONS))
        values["activation"] = data["activation"]
    if "classes" in data:
        classes = data["classes"]
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c.strip() for c in classes)):
            raise bad("classes", "a list of class names")
        values["classes"] = tuple(c.strip() for c in classes)
    return ModelSettings(**values)


# ------------------------------------------------------------------ loading models


def model_path(text: str) -> Path:
    """The model file named by the ``model`` parameter: a path, or the name of a model in
    the catalogue (``maskwork models list``; its cached file), after checking it exists.

    Raises
    ------
    InputError
        When no file was chosen, the file does not exist and no catalogue model has that
        name, or the catalogue model is not downloaded (the message says how to get it).
    """
    if not text.strip():
        raise InputError("choose a model file (TorchScript .pt/.ts or ONNX .onnx) in the model parameter")
    from maskwork.core.models import ModelNotInstalled, UnknownModel, resolve_model

    try:
        path = resolve_model(text.strip())
    except UnknownModel:
        raise InputError(f"the model file {Path(text.strip()).expanduser()} does not exist, and no catalogue model "
                         "has that name (maskwork models list)") from None
    except ModelNotInstalled as error:
        raise InputError(str(error)) from None
    if not path.is_file():
        raise InputError(f"{path} is a folder, not a model file")
    return path


class TorchScriptModel:
    """A TorchScript module on a torch device, called with NCHW float32 arrays."""

    format = "TorchScript"

    def __init__(self, module, device: torch.device) -> None:
        self.module = module
        self.device = device
        self.declared_channels: int | None = None  # TorchScript records no input shapes
        self.declared_size: tuple[int, int] | None = None
        self.device_name = str(device)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The model's first output for ``batch`` as a float32 array."""
        torch = import_torch()
        tensor = torch.from_numpy(batch).to(self.device)
        try:
            with torch.inference_mode(), autocast(self.device):
                output = self.module(tensor)
        except RuntimeError as error:
            if "out of memory" in str(error).lower():
                raise  # out_of_memory_as_input_error explains this one
            raise InputError(f"the model failed on a {_shape_text(batch.shape)} input: {_last_line(error)}; {SIDECAR_HINT}") from None
        if isinstance(output, dict):  # torchvision's segmentation models return {"out": ...}
            output = output["out"] if "out" in output else next(iter(output.values()))
        elif isinstance(output, (tuple, list)):
            output = output[0]
        if not isinstance(output, torch.Tensor):
            raise InputError(f"the model returned {type(output).__name__}, not a tensor of class scores")
        return output.detach().float().cpu().numpy()

    def describe(self) -> dict:
        """Input and output names and types (TorchScript keeps no shapes)."""
        schema = self.module.forward.schema
        inputs = [{"name": a.name, "type": str(a.type), "shape": None} for a in schema.arguments if a.name != "self"]
        outputs = [{"name": f"output {i}", "type": str(r.type), "shape": None} for i, r in enumerate(schema.returns)]
        return {"inputs": inputs, "outputs": outputs}


class OnnxModel:
    """An onnxruntime session, called with NCHW float32 arrays."""

    format = "ONNX"

    def __init__(self, session) -> None:
        self.session = session
        first = session.get_inputs()[0]
        self.input_name = first.name
        self.input_dtype = np.float16 if first.type == "tensor(float16)" else np.float32
        if first.type not in ("tensor(float)", "tensor(float16)"):
            raise InputError(f"the ONNX model's input {first.name} holds {first.type}; maskwork feeds float images")
        shape = first.shape
        if len(shape) != 4:
            raise InputError(f"the ONNX model's input {first.name} has shape {shape}; maskwork feeds (N, C, H, W) images")
        self.declared_channels = shape[1] if isinstance(shape[1], int) else None
        fixed = all(isinstance(side, int) and side > 0 for side in shape[2:])
        self.declared_size = (shape[2], shape[3]) if fixed else None
        self.device_name = "cuda" if session.get_providers()[0] == "CUDAExecutionProvider" else "cpu"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """The model's first output for ``batch`` as a float32 array."""
        try:
            outputs = self.session.run(None, {self.input_name: batch.astype(self.input_dtype, copy=False)})
        except Exception as error:  # onnxruntime's errors derive from Exception directly
            raise InputError(f"the model failed on a {_shape_text(batch.shape)} input: {_last_line(error)}; {SIDECAR_HINT}") from None
        return np.asarray(outputs[0], dtype=np.float32)

    def describe(self) -> dict:
        """Input and output names, types and shapes (symbolic sides as their names)."""

        def entry(arg) -> dict:
            return {"name": arg.name, "type": arg.type, "shape": list(arg.shape)}

        return {"inputs": [entry(a) for a in self.session.get_inputs()], "outputs": [entry(a) for a in self.session.get_outputs()]}


_models: OrderedDict[tuple, TorchScriptModel | OnnxModel] = OrderedDict()
_models_lock = threading.Lock()


def load_model(path: Path, device: torch.device) -> TorchScriptModel | OnnxModel:
    """The model in ``path`` ready to run on ``device``, loaded once per file version.

    Loaded models are cached by (path, modification time, size, device), so a changed file
    is read again.

    Raises
    ------
    InputError
        When the file is neither TorchScript nor ONNX (a state dict, an image, ...).
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device))
    with _models_lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
        try:
            model = _open(path, device)
        except InputError as error:
            from maskwork.core.models import why_a_cached_model_fails

            # A catalogue model's file is not the person's export to fix: damaged since (a
            # full disk), or the right file for another operator (Segment Anything's).
            why = why_a_cached_model_fails(path)
            if why is None:
                raise
            raise InputError(f"{why} ({error})") from None
        _models[key] = model
        while len(_models) > CACHED_MODELS:
            _models.popitem(last=False)
        return model


def _open(path: Path, device: torch.device) -> TorchScriptModel | OnnxModel:
    if path.suffix.lower() == ".onnx":
        return _open_onnx(path, device)
    if zipfile.is_zipfile(path):  # every torch.save / torch.jit.save file is a zip archive
        return _open_torchscript(path, device)
    try:
        return _open_onnx(path, device)
    except InputError:
        raise InputError(
            f"{path.name} is neither a TorchScript nor an ONNX model; export the network with "
            "torch.jit.script(model).save(path) (or torch.jit.trace) or with torch.onnx.export"
        ) from None


def _open_torchscript(path: Path, device: torch.device) -> TorchScriptModel:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    # torch.jit.save writes the model's code and constants beside the weights; torch.save
    # of a state dict (or of a pickled module) writes only data.pkl and the tensors.
    if not any(name.endswith("/constants.pkl") or "/code/" in name for name in names):
        raise InputError(
            f"{path.name} holds weights saved with torch.save (a state dict or a pickled module), which is not "
            "a runnable model: the network's code is missing. Export it as TorchScript "
            "(torch.jit.script(model) or torch.jit.trace(model, example), then .save(path)) or as ONNX "
            "(torch.onnx.export)"
        )
    torch = import_torch()
    try:
        module = torch.jit.load(str(path), map_location=device)
    except RuntimeError as error:
        raise InputError(f"{path.name} cannot be loaded as TorchScript: {_last_line(error)}") from None
    module.eval()
    return TorchScriptModel(module, device)


def _open_onnx(path: Path, device: torch.device) -> OnnxModel:
    onnxruntime = import_optional("onnxruntime", "Running an ONNX model")
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda" and "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # errors only: warnings about unused initialisers are noise here
    try:
        # A path rather than bytes, so weights stored as external data beside the file load.
        session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as error:  # onnxruntime's errors derive from Exception directly
        raise InputError(f"{path.name} cannot be read as an ONNX model: {_last_line(error)}") from None
    return OnnxModel(session)


def _last_line(error: BaseException) -> str:
    """The informative line of a long torch or onnxruntime message."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[-1] if lines else type(error).__name__
    for prefix in ("RuntimeError: ", "[ONNXRuntimeError] : "):
        text = text.removeprefix(prefix)
    return text


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(side) for side in shape)


def reconcile(settings: ModelSettings, model: TorchScriptModel | OnnxModel) -> ModelSettings:
    """``settings`` adjusted to what the model file itself declares (ONNX input shapes).

    Raises
    ------
    InputError
        When the model declares input channels maskwork cannot feed or the sidecar
        contradicts, or when the sidecar's mean or std do not fit the channels.
    """
    channels = model.declared_channels
    if channels is not None:
        if channels not in (1, 3):
            raise InputError(f"the model expects {channels} input channels; maskwork feeds 1 (gray) or 3 (colour)")
        if settings.channels is None:
            settings = replace(settings, channels="gray" if channels == 1 else "rgb")
        elif channels != settings.input_channels:
            raise InputError(
                f"the model expects {channels} input channel(s) but its sidecar {settings.sidecar} says "
                f'"channels": "{settings.channels}"'
            )
    elif settings.channels is None:
        settings = replace(settings, channels="rgb")
    if model.declared_size is not None:
        settings = replace(settings, input_size=model.declared_size, fixed_size=True)
    for key in ("mean", "std"):
        count = len(getattr(settings, key))
        if count not in (1, settings.input_channels):
            raise InputError(
                f"the sidecar {settings.sidecar} gives {count} {key} values but the model takes "
                f"{settings.input_channels} channel(s)"
            )
    return settings


def describe_model(path: str | os.PathLike) -> dict:
    """What a model file is and expects, for a dialog: cheap after the first call.

    Parameters
    ----------
    path : str or path-like
        A TorchScript or ONNX file.

    Returns
    -------
    dict
        ``format`` ("TorchScript" or "ONNX"), ``path``, ``size_bytes``, ``inputs`` and
        ``outputs`` (lists of {"name", "type", "shape"}; shapes are None for TorchScript,
        symbolic sides are names), ``sidecar`` (its path or None) and ``settings`` (the
        effective settings, sidecar and model declarations combined).

    Raises
    ------
    InputError
        For the same files :func:`run_model` rejects.
    """
    path = model_path(str(path))
    settings = read_settings(path)
    model = load_model(path, resolve_device("cpu"))  # the CPU copy: no GPU memory for a look
    settings = reconcile(settings, model)
    found = sidecar_path(path)
    return {
        "format": model.format,
        "path": str(path),
        "size_bytes": path.stat().st_size,
        **model.describe(),
        "sidecar": None if found is None else str(found),
        "settings": {key: value for key, value in asdict(settings).items() if key != "sidecar"},
    }


def model_info_text(params: dict) -> str:
    """Model info: what :func:`describe_model` finds in ``params["model"]``, one fact a line.

    Raises
    ------
    InputError
        For the same files :func:`run_model` rejects.
    """
    info = describe_model(params["model"])

    def tensors(items) -> str:
        return "; ".join(f"{item['name']} {item.get('type', '')} {item.get('shape') or ''}".strip() for item in items) or "not declared"

    lines = [
        f"{info['format']} model, {format_bytes(info['size_bytes'])}",
        f"Inputs: {tensors(info.get('inputs', []))}",
        f"Outputs: {tensors(info.get('outputs', []))}",
        f"Settings file: {info['sidecar'] or 'none (defaults: RGB in [0, 1], softmax or sigmoid)'}",
    ]
    lines += [f"  {name}: {value}" for name, value in info["settings"].items() if value is not None]
    return "\n".join(lines)


# ------------------------------------------------------------------ running


def model_input(image: np.ndarray, settings: ModelSettings) -> np.ndarray:
    """``image`` as the model's (row, col, channel) float32 input, normalised."""
    pixels = to_float(image).channels
    if settings.channels == "gray":
        pixels = luminance(pixels)[..., None] if pixels.shape[2] == 3 else pixels
    else:
        if pixels.shape[2] == 1:
            pixels = gray_to_rgb(pixels)
        if settings.channels == "bgr":
            pixels = pixels[..., ::-1]
    mean = np.asarray(settings.mean, np.float32)
    std = np.asarray(settings.std, np.float32)
    return np.ascontiguousarray((pixels * np.float32(settings.scale) - mean) / std, dtype=np.float32)


def _padded_size(height: int, width: int, settings: ModelSettings) -> tuple[int, int]:
    if settings.fixed_size:
        return settings.input_size
    step = settings.multiple_of
    return -(-height // step) * step, -(-width // step) * step


def _activate(scores: np.ndarray, activation: str) -> np.ndarray:
    """(h, w, channels) probabilities in [0, 1] from raw (h, w, channels) scores."""
    if activation == "softmax":
        exp = np.exp(scores - scores.max(axis=2, keepdims=True))
        return exp / exp.sum(axis=2, keepdims=True)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-np.clip(scores, -80.0, 80.0)))
    return np.clip(scores, 0.0, 1.0)


def _estimate_memory(inputs: dict, params: dict) -> int:
    """Bytes for the weights, one tile's activations and the full-image buffers (rough)."""
    height, width = np.shape(inputs["image"])[:2]
    try:
        weights = os.path.getsize(os.path.expanduser(params["model"]))
    except OSError:
        weights = 0
    tile = params["tile_size"] or DEFAULT_TILE
    tile_pixels = min(tile, height) * min(tile, width)
    # Input, blended scores (two classes assumed), blend weights and labels, in float32.
    image_buffers = height * width * 4 * (3 + 2 + 1 + 1)
    return 2 * weights + tile_pixels * ACTIVATIONS_PER_PIXEL * 4 + image_buffers


@register(
    "run_model",
    title="Run segmentation model",
    category="Deep learning",
    outputs=("labels", "probabilities"),
    # torch picks the device for ONNX models too; onnxruntime is imported when one is opened
    requires=("torch",),
    memory_estimate=_estimate_memory,
    panel_views=(
        InfoAction(
            name="model_info",
            text="Model info...",
            title="Model",
            tip="Show the model's format, inputs, outputs and settings",
            describe=model_info_text,
        ),
    ),
)
def run_model(
    image: np.ndarray,
    *,
    model: Annotated[str, FilePath(MODEL_FILTER)] = "",
    tile_size: Annotated[int, Range(0, 8192), Display(unit="px", special="from the model")] = 0,
    overlap: Annotated[int, Range(0, 1024)] = 32,
    activation: Literal["auto", "softmax", "sigmoid", "none"] = "auto",
    threshold: Annotated[float, Range(0.0, 1.0)] = 0.5,
    device: Literal["auto", "cuda", "mps", "cpu"] = "auto",
    ctx: RunContext | None = None,
) -> Result:
    """Segment the image with a TorchScript or ONNX model file.

    The model gets NCHW float32 tiles and returns per-pixel class scores of the tile's
    size; a JSON sidecar beside it (``<model>.json`` or ``<model-stem>.json``) describes
    its input size, channels, normalisation, activation and class names.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image of any bit depth (pixels reach the model in [0, 1] before
        the sidecar's scale, mean and std).
    model : str
        The model file: TorchScript (torch.jit.script or trace, then save) or ONNX. A
        state dict is not enough: it holds weights without the network's code.
    tile_size : int
        Side of the square tiles the image is cut into, in pixels; 0 takes the sidecar's
        input_size, else 512. Smaller tiles need less memory. A model with a fixed input
        size always runs on tiles of that size.
    overlap : int
        Pixels neighbouring tiles share; their predictions are blended there, which hides
        seams. Must be smaller than the tile.
    activation : {"auto", "softmax", "sigmoid", "none"}
        How scores become probabilities: auto takes the sidecar's choice, else a softmax
        over several output channels and a sigmoid for one; none when the model already
        outputs probabilities.
    threshold : float
        For a model with one output channel: the foreground probability from which a
        pixel gets label 1.
    device : {"auto", "cuda", "mps", "cpu"}
        Where the model runs; auto takes the preferred device, else the GPU when there is
        one. TorchScript models run in half precision on GPUs; ONNX models use onnxruntime's
        CUDA provider when it is installed, else the CPU.

    Returns
    -------
    Result
        ``labels``: the most probable class per pixel (uint8, 0..classes-1; 0/1 for a one-
        channel model); ``probabilities``: float32 (row, col, channel) in [0, 1]. Scores:
        the model format and device, ``classes`` (the sidecar's names, comma-separated)
        and ``fraction_<class>``, the share of pixels given each label.
    """
    ctx = ctx or null_context()
    image = check_image(image)
    path = model_path(model)
    settings = read_settings(path)
    ctx.progress(0.0, "loading the model")
    torch_device = resolve_device(device)
    loaded = load_model(path, torch_device)
    settings = reconcile(settings, loaded)
    if activation != "auto":
        settings = replace(settings, activation=activation)
    pixels = model_input(image, settings)
    if settings.fixed_size:
        tile = min(settings.input_size)
    else:
        tile = tile_size or (max(settings.input_size) if settings.input_size else DEFAULT_TILE)

    def predict(piece: np.ndarray) -> np.ndarray:
        height, width = piece.shape[:2]
        padded_height, padded_width = _padded_size(height, width, settings)
        # Mirrored padding keeps the borders looking like image, not like a black frame.
        padded = np.pad(piece, ((0, padded_height - height), (0, padded_width - width), (0, 0)), mode="reflect")
        batch = np.ascontiguousarray(padded.transpose(2, 0, 1)[None])
        raw = loaded(batch)
        if raw.ndim == 3:
            raw = raw[:, None]
        if raw.ndim != 4 or raw.shape[0] != 1 or raw.shape[2:] != (padded_height, padded_width):
            raise InputError(
                f"the model returned an output of shape {_shape_text(raw.shape)} for a {_shape_text(batch.shape)} "
                f"input; maskwork needs per-pixel class scores (1, classes, {padded_height}, {padded_width})"
            )
        raw = raw[0, :, :height, :width].transpose(1, 2, 0)
        chosen = settings.activation or ("softmax" if raw.shape[2] > 1 else "sigmoid")
        return _activate(raw, chosen)

    with out_of_memory_as_input_error(torch_device):
        probabilities = predict_tiled(
            predict, pixels, tile=tile, overlap=overlap, ctx=ctx, progress=(0.05, 1.0), message=f"running {path.name}"
        )
    tiles = len(tile_starts(image.shape[0], tile, overlap)) * len(tile_starts(image.shape[1], tile, overlap))
    probabilities = np.clip(probabilities, 0.0, 1.0)
    channels = probabilities.shape[2]
    if channels == 1:
        labels = (probabilities[..., 0] >= threshold).astype(np.uint8)
    else:
        labels = np.argmax(probabilities, axis=2).astype(np.uint8 if channels <= 256 else np.uint16)
    label_count = max(channels, 2)
    if settings.classes is not None and len(settings.classes) != label_count:
        raise InputError(
            f"the sidecar {settings.sidecar} names {len(settings.classes)} classes but the model gives "
            f"{label_count} labels ({channels} output channel(s); one channel means background and foreground)"
        )
    names = settings.classes or tuple(str(value) for value in range(label_count))
    fractions = np.bincount(labels.ravel(), minlength=label_count) / labels.size
    scores: dict[str, Any] = {"format": loaded.format, "device": loaded.device_name, "tiles": tiles}
    if settings.classes is not None:
        scores["classes"] = ", ".join(settings.classes)
    scores.update({f"fraction_{name}": float(fraction) for name, fraction in zip(names, fractions)})
    return Result({"labels": labels, "probabilities": probabilities}, scores=scores,
                  class_ids=tuple(range(probabilities.shape[2])))
