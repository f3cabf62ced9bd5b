"""Working copies shared by the restoration operators: any dtype in, floats in [0, 1] out.

Integer images are divided by their dtype's range (255 for 8-bit, 65535 for 16-bit);
float images already in [0, 1] are used as they are, other float images are stretched
between their own minimum and maximum. Intensity parameters given "in 8-bit grey levels"
therefore mean the same fraction of the range for every depth. :meth:`Working.restore`
maps results back to the input's dtype and shape, clipping to the range and rounding
integers; an alpha channel is never processed and comes back unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from maskwork.operators.context import InputError


@dataclass
class Working:
    """A float32 working copy of an image and what it takes to go back.

    Attributes
    ----------
    pixels : ndarray
        float32, (row, col) for gray or (row, col, 3) for colour, values in [0, 1].
    dtype, shape
        The input's dtype and shape, which :meth:`restore` reproduces.
    offset, scale : float
        ``input = pixels * scale + offset`` (``scale`` is the intensity range).
    alpha : ndarray or None
        The input's alpha channel, passed through unchanged.
    """

    pixels: np.ndarray
    dtype: np.dtype
    shape: tuple
    offset: float
    scale: float
    alpha: np.ndarray | None = None

    @property
    def is_color(self) -> bool:
        """Whether the working pixels have three channels."""
        return self.pixels.ndim == 3

    def restore(self, pixels: np.ndarray) -> np.ndarray:
        """``pixels`` (working units, same layout as :attr:`pixels`) in the input's dtype and shape."""
        values = np.clip(np.asarray(pixels, np.float64), 0.0, 1.0) * self.scale + self.offset
        if np.issubdtype(self.dtype, np.integer):
            info = np.iinfo(self.dtype)
            values = np.clip(np.rint(values), info.min, info.max)
        out = values.astype(self.dtype)
        if self.alpha is not None:
            out = np.concatenate([out, self.alpha[..., None]], axis=2)
        return out.reshape(self.shape)


def _range(image: np.ndarray, color: np.ndarray) -> tuple[float, float]:
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        return float(info.min), float(info.max) - float(info.min)
    low, high = float(color.min()), float(color.max())
    if low >= 0.0 and high <= 1.0:
        return 0.0, 1.0
    return low, (high - low) if high > low else 1.0


def check_intensity_image(image, name: str = "image") -> np.ndarray:
    """``image`` as an array after checking it is a gray, RGB or RGBA raster of numbers."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise InputError(f"the {name} must be gray, RGB or RGBA, got shape {image.shape}")
    if min(image.shape[:2]) < 2:
        raise InputError(f"the {name} is too small ({image.shape[0]}x{image.shape[1]})")
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"the {name} must hold intensities (integers or floats), not {image.dtype}")
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
        raise InputError(f"the {name} contains NaN or infinite values")
    return image


def working(image, name: str = "image") -> Working:
    """A :class:`Working` copy of ``image`` (gray, RGB or RGBA; any integer or float dtype).

    Raises
    ------
    InputError
        For other shapes, non-numeric dtypes, NaN or infinite values.
    """
    image = check_intensity_image(image, name)
    shape, dtype = image.shape, image.dtype
    alpha = None
    color = image
    if image.ndim == 3 and image.shape[2] == 1:
        color = image[..., 0]
    elif image.ndim == 3 and image.shape[2] == 4:
        color, alpha = image[..., :3], image[..., 3].copy()
    offset, scale = _range(image, color)
    pixels = color.astype(np.float32)
    if offset:
        pixels -= np.float32(offset)
    if scale != 1.0:
        pixels *= np.float32(1.0 / scale)
    return Working(np.clip(pixels, 0.0, 1.0, out=pixels), dtype, shape, offset, scale, alpha)


def intensity_range(image) -> float:
    """The span of intensities that working value 1.0 stands for in ``image``.

    255 for 8-bit, 65535 for 16-bit, 1 for float images within [0, 1], max - min for
    other float images (alpha ignored).
    """
    image = np.asarray(image)
    color = image[..., :3] if image.ndim == 3 else image
    return _range(image, color)[1]
