"""Colour table for label, marker and class images.

Label 0 means "unlabelled" and is fully transparent so overlays never hide the
image. Labels 1 and 2 follow the scribble convention of the whole application
(1 = foreground, green; 2 = background, red). Labels 3 to 20 use a fixed list of
well-separated categorical colours, and every label above that gets a generated
colour, so the table works for any number of classes and is the same on every
run (exports and screenshots stay comparable).
"""

from __future__ import annotations

import numpy as np

__all__ = ["MASK_COLORS", "label_colors", "colorize_labels", "mask_color", "mask_color_name"]

# RGBA rows for labels 0..20. Labels 3.. follow Sasha Trubetskoy's list of 20
# distinct colours, reordered so the first few classes get the most distinct hues.
_FIXED = np.array(
    [
        (0, 0, 0, 0),  # 0 unlabelled: transparent
        (46, 204, 64, 255),  # 1 foreground: green
        (230, 57, 70, 255),  # 2 background: red
        (67, 99, 216, 255),  # blue
        (255, 225, 25, 255),  # yellow
        (240, 50, 230, 255),  # magenta
        (66, 212, 244, 255),  # cyan
        (245, 130, 49, 255),  # orange
        (145, 30, 180, 255),  # purple
        (191, 239, 69, 255),  # lime
        (70, 153, 144, 255),  # teal
        (250, 190, 212, 255),  # pink
        (154, 99, 36, 255),  # brown
        (220, 190, 255, 255),  # lavender
        (128, 0, 0, 255),  # maroon
        (170, 255, 195, 255),  # mint
        (128, 128, 0, 255),  # olive
        (255, 216, 177, 255),  # apricot
        (0, 0, 117, 255),  # navy
        (255, 250, 200, 255),  # beige
        (169, 169, 169, 255),  # grey
    ],
    dtype=np.uint8,
)

# Golden-ratio hue stepping spreads any number of consecutive hues as evenly as
# possible; cycling saturation and value as well keeps neighbouring labels apart
# even where their hues end up close. Value stays >= 0.7 so no generated colour
# is close to black (invisible on dark images) or to the transparent label 0.
_GOLDEN = 0.6180339887498949
_HUE_START = 0.11
_SATURATIONS = np.array([0.85, 0.6, 1.0])
_VALUES = np.array([0.95, 0.75, 0.85, 0.7])

# Above this label value a dense lookup table would cost more memory than it
# saves time, so colorize_labels switches to colouring only the labels present.
_MAX_DENSE_LUT = 1 << 20


def _generated_colors(labels: np.ndarray) -> np.ndarray:
    """Return the RGBA colours of labels beyond the fixed table.

    Parameters
    ----------
    labels : ndarray of int
        Label values, each at least ``len(_FIXED)``.

    Returns
    -------
    ndarray of uint8, shape (len(labels), 4)
        Opaque colours computed from the label value alone, so a label keeps its
        colour whatever other labels are present.
    """
    k = np.asarray(labels, dtype=np.int64) - len(_FIXED)
    hue = (_HUE_START + k * _GOLDEN) % 1.0
    sat = _SATURATIONS[k % len(_SATURATIONS)]
    val = _VALUES[(k // len(_SATURATIONS)) % len(_VALUES)]
    # Vectorised HSV -> RGB (colorsys works on one colour at a time).
    sector = np.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    sector = sector.astype(np.int64) % 6
    p = val * (1.0 - sat)
    q = val * (1.0 - sat * frac)
    t = val * (1.0 - sat * (1.0 - frac))
    red = np.choose(sector, [val, q, p, p, t, val])
    green = np.choose(sector, [t, val, val, q, p, p])
    blue = np.choose(sector, [p, p, t, val, val, q])
    rgba = np.empty((k.size, 4), dtype=np.uint8)
    rgba[:, :3] = np.round(np.stack([red, green, blue], axis=-1) * 255.0)
    rgba[:, 3] = 255
    return rgba


def label_colors(count: int) -> np.ndarray:
    """Return the colour table for labels ``0 .. count - 1``.

    Parameters
    ----------
    count : int
        Number of labels, including the unlabelled label 0.

    Returns
    -------
    ndarray of uint8, shape (count, 4)
        RGBA colours: row 0 is transparent ``(0, 0, 0, 0)``, row 1 green
        (foreground), row 2 red (background), rows 3 to 20 fixed categorical
        colours and later rows generated ones. The table is deterministic and a
        label's colour does not depend on ``count``.

    Raises
    ------
    ValueError
        If `count` is negative.
    """
    count = int(count)
    if count < 0:
        raise ValueError(f"label count must be >= 0, got {count}")
    if count <= len(_FIXED):
        return _FIXED[:count].copy()
    extra = _generated_colors(np.arange(len(_FIXED), count))
    return np.concatenate([_FIXED, extra])


def colorize_labels(labels: np.ndarray) -> np.ndarray:
    """Colour a label image with the table of :func:`label_colors`.

    Parameters
    ----------
    labels : ndarray of int or bool, shape (row, col)
        Non-negative class ids; 0 is unlabelled. Any integer dtype works.

    Returns
    -------
    ndarray of uint8, shape (row, col, 4)
        RGBA image, transparent where the label is 0.

    Raises
    ------
    ValueError
        If `labels` is not an integer (or bool) array or holds negative values.
    """
    labels = np.asarray(labels)
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.size == 0:
        return np.zeros(labels.shape + (4,), dtype=np.uint8)
    if labels.dtype.kind == "i" and labels.min() < 0:
        raise ValueError("labels must be >= 0 to be coloured")
    top = int(labels.max())
    if top < _MAX_DENSE_LUT:
        return label_colors(top + 1)[labels]
    # Sparse, huge ids (e.g. hashed object ids): colour only the ids present.
    present, inverse = np.unique(labels, return_inverse=True)
    table = np.empty((present.size, 4), dtype=np.uint8)
    fixed = present < len(_FIXED)
    table[fixed] = _FIXED[present[fixed]]
    table[~fixed] = _generated_colors(present[~fixed])
    return table[inverse.reshape(labels.shape)]


#: Colours of mask layers (RGB), each new mask taking the first one no other mask has:
#: two masks (GrabCut's and a threshold's) can be told apart. None is green or red (the
#: scribbles) or magenta (an operator's preview).
MASK_COLORS = {
    "sky blue": (0, 170, 255),
    "yellow": (255, 225, 25),
    "orange": (245, 130, 49),
    "violet": (145, 30, 180),
    "teal": (70, 153, 144),
    "white": (255, 255, 255),
}


def mask_color_name(name: str) -> str:
    """The mask colour a mask layer whose ``Layer.colormap`` is ``name`` is drawn in: a
    name that is no mask colour (a mask made before masks had colours: "gray") is the
    first, sky blue."""
    return name if name in MASK_COLORS else next(iter(MASK_COLORS))


def mask_color(name: str) -> tuple[int, int, int]:
    """The RGB colour of a mask layer whose colour (``Layer.colormap``) is ``name``."""
    return MASK_COLORS[mask_color_name(name)]
