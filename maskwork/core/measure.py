"""Numbers that judge a result: overlap of masks, objects of a labels image, histograms."""

from __future__ import annotations

import cv2
import numpy as np

from maskwork.core.pixels import luminance

#: Classes of :func:`difference_labels`.
AGREE, ONLY_A, ONLY_B = 1, 2, 3


def _as_mask(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3:
        array = array.any(axis=2)
    return array != 0


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (nonzero = inside); 1.0 when both are empty."""
    a, b = _as_mask(a), _as_mask(b)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in size: {a.shape[:2]} vs {b.shape[:2]}")
    union = np.count_nonzero(a | b)
    return 1.0 if union == 0 else np.count_nonzero(a & b) / union


def dice(a: np.ndarray, b: np.ndarray) -> float:
    """Dice coefficient 2|A and B| / (|A| + |B|); 1.0 when both are empty."""
    a, b = _as_mask(a), _as_mask(b)
    if a.shape != b.shape:
        raise ValueError(f"masks differ in size: {a.shape[:2]} vs {b.shape[:2]}")
    total = np.count_nonzero(a) + np.count_nonzero(b)
    return 1.0 if total == 0 else 2 * np.count_nonzero(a & b) / total


def difference_labels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Agreement map: 1 where both masks are inside, 2 only ``a``, 3 only ``b``, 0 neither."""
    a, b = _as_mask(a), _as_mask(b)
    out = np.zeros(a.shape, np.uint8)
    out[a & b] = AGREE
    out[a & ~b] = ONLY_A
    out[~a & b] = ONLY_B
    return out


def object_areas(labels: np.ndarray, by_id: bool | None = None) -> dict[int, int]:
    """Pixel count of every object, in label order.

    Parameters
    ----------
    labels : ndarray
        A mask or a labels array.
    by_id : bool, optional
        True: every nonzero id is one object (a labels layer: a class or an instance,
        however many pieces). False: every connected part (8-connected) of the nonzero
        pixels is one (a mask). By default, ids when some pixel holds more than 1.

    Returns
    -------
    dict
        Object number (the id, or the part's number from 1) -> pixel count.
    """
    labels = np.asarray(labels)
    if by_id is None:
        by_id = labels.dtype != bool and bool(labels.size) and labels.max() > 1
    if not by_id:
        # OpenCV's labelling returns the areas directly and is several times faster than
        # scipy.ndimage.label on 12-64 megapixel masks.
        _, _, stats, _ = cv2.connectedComponentsWithStats((labels != 0).astype(np.uint8), connectivity=8)
        return {i: int(area) for i, area in enumerate(stats[1:, cv2.CC_STAT_AREA], start=1)}
    if labels.size == 0 or labels.min() < 0:
        ids, counts = np.unique(labels[labels != 0], return_counts=True)
    else:
        # bincount is linear time; unique sorts, which is slow on 12-megapixel layers.
        counts = np.bincount(labels.ravel())
        ids = np.flatnonzero(counts)
        ids = ids[ids != 0]
        counts = counts[ids]
    return {int(i): int(c) for i, c in zip(ids, counts)}


def histogram(image: np.ndarray, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Counts and bin edges of the intensities, NaN ignored.

    Colour images count their luminance (:func:`maskwork.core.pixels.luminance`, the
    gray value thresholds see, so a threshold line falls where the operator put it);
    images with 2 or more than 4 channels count their first channel.
    """
    image = np.asarray(image)
    if image.ndim == 3:
        image = luminance(image) if image.shape[2] in (3, 4) else image[..., 0]
    values = image.ravel()
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return np.zeros(bins, np.int64), np.linspace(0, 1, bins + 1)
    low, high = float(values.min()), float(values.max())
    if image.dtype == np.uint8:
        low, high = 0.0, 255.0
    if high <= low:
        high = low + 1.0
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    return counts, edges


# ------------------------------------------------------------------ image quality


def _image_pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two images of one shape; a trailing single channel is dropped."""
    a, b = np.asarray(a), np.asarray(b)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if b.ndim == 3 and b.shape[2] == 1:
        b = b[..., 0]
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    return a, b


def _inside(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
    """The mask as a bool (row, col) array of the images' size, or None for the whole image."""
    if mask is None:
        return None
    inside = _as_mask(mask)
    if inside.shape != tuple(shape[:2]):
        raise ValueError(f"the mask is {inside.shape[0]}x{inside.shape[1]} but the images are {shape[0]}x{shape[1]}")
    if not inside.any():
        raise ValueError("the mask is empty: there is nothing to compare inside it")
    return inside


def _compared(inside: np.ndarray | None, a: np.ndarray, b: np.ndarray, reach: int = 0) -> np.ndarray | None:
    """``inside`` (None: everywhere) less the pixels where either image holds a value that
    is not a finite number (NaN, infinity: a float image's unknown pixels) in any channel,
    grown by ``reach`` pixels (a window that holds one is left out too)."""
    unknown = None
    for image in (a, b):
        if image.dtype.kind in "fc":
            bad = ~np.isfinite(image)
            bad = bad.any(axis=2) if bad.ndim == 3 else bad
            unknown = bad if unknown is None else unknown | bad
    if unknown is None or not unknown.any():
        return inside
    if reach:
        size = 2 * reach + 1
        unknown = cv2.dilate(unknown.astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    kept = ~unknown if inside is None else inside & ~unknown
    if not kept.any():
        raise ValueError("no pixel to compare holds a finite number in both images (NaN or infinity everywhere)")
    return kept


def _finite(image: np.ndarray) -> np.ndarray:
    """``image`` with NaN and infinity as 0 (an integer image as it is)."""
    if image.dtype.kind not in "fc":
        return image
    return np.nan_to_num(image, nan=0.0, posinf=0.0, neginf=0.0)


def _data_range(reference: np.ndarray, data_range: float | None) -> float:
    """The given range, the integer dtype's range, or the float reference's own range."""
    if data_range is not None:
        return float(data_range)
    if reference.dtype == bool:
        return 1.0
    if np.issubdtype(reference.dtype, np.unsignedinteger):
        return float(np.iinfo(reference.dtype).max)
    if np.issubdtype(reference.dtype, np.integer):
        info = np.iinfo(reference.dtype)
        return float(info.max) - float(info.min)
    finite = reference[np.isfinite(reference)]
    span = float(finite.max() - finite.min()) if finite.size else 0.0
    return span if span > 0 else 1.0


def mse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error between two images, over all pixels or those inside ``mask``.

    Parameters
    ----------
    a, b : ndarray
        Images of one shape (gray or with channels; every channel counts).
    mask : ndarray, optional
        Nonzero where to compare, of the images' (row, col) size. Pixels that are not
        finite numbers (NaN, infinity) in either image are left out as well.

    Raises
    ------
    ValueError
        When the shapes differ, the mask is empty or of another size, or no pixel to
        compare is finite in both images.
    """
    a, b = _image_pair(a, b)
    inside = _compared(_inside(mask, a.shape), a, b)
    if inside is not None:
        a, b = a[inside], b[inside]
    a, b = a.ravel(), b.ravel()
    total = 0.0
    for start in range(0, a.size, MSE_CHUNK):  # float64 differences of a chunk at a time
        diff = a[start : start + MSE_CHUNK].astype(np.float64) - b[start : start + MSE_CHUNK].astype(np.float64)
        total += float(np.dot(diff, diff))
    return total / a.size


#: Values whose squared differences :func:`mse` makes at once (32 MB of float64).
MSE_CHUNK = 4_000_000


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float | None = None) -> float:
    """Peak signal-to-noise ratio in dB of ``b`` against the reference ``a``.

    Parameters
    ----------
    a : ndarray
        Reference image.
    b : ndarray
        Image to judge, of ``a``'s shape.
    mask : ndarray, optional
        Nonzero where to compare, of the images' (row, col) size.
    data_range : float, optional
        Span of possible values. By default the dtype's (255 for 8-bit, 65535 for
        16-bit) for integer images and the reference's max - min for float images.

    Returns
    -------
    float
        ``10 log10(data_range^2 / MSE)``; infinity for identical images.
    """
    a, b = _image_pair(a, b)
    error = mse(a, b, mask)
    peak = _data_range(a, data_range)
    if error == 0:
        return float("inf")
    return float(10.0 * np.log10(peak * peak / error))


#: SSIM's window side and constants, as scikit-image's defaults (Wang et al. 2004).
SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03


def ssim(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None, data_range: float | None = None) -> float:
    """Structural similarity (scikit-image's, 7x7 windows) of ``b`` against the reference ``a``.

    Colour images are compared per channel and averaged. Inside a mask, the per-pixel
    SSIM map is averaged over the masked pixels; like scikit-image's whole-image mean,
    that leaves out the 3-pixel border where the windows do not fit, unless the mask lies
    only there. Pixels whose window holds a value that is not a finite number (NaN,
    infinity) in either image are left out too.

    The numbers are scikit-image's ``structural_similarity`` with its defaults (uniform
    windows, sample covariance), computed with OpenCV's box filter: scipy's uniform
    filter holds the GIL, so on a 12 MP pair the window stalled 18-38 ms at a time while the
    measure panel refreshed during a registration preview; OpenCV releases it.

    Parameters
    ----------
    a : ndarray
        Reference image (at least 7x7).
    b : ndarray
        Image to judge, of ``a``'s shape.
    mask : ndarray, optional
        Nonzero where to compare, of the images' (row, col) size.
    data_range : float, optional
        As for :func:`psnr`.

    Returns
    -------
    float
        1 for identical images, lower for less similar ones.
    """
    a, b = _image_pair(a, b)
    if min(a.shape[:2]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs images of at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels, these are "
                         f"{a.shape[0]}x{a.shape[1]}")
    border = (SSIM_WINDOW - 1) // 2
    # A window that holds a NaN or infinity has no SSIM: its pixels are left out.
    asked = _inside(mask, a.shape)
    inside = _compared(asked, a, b, reach=border)
    peak = _data_range(a, data_range)
    if inside is not asked:  # some pixel is no number: whatever stands in lies in windows left out
        a, b = _finite(a), _finite(b)
    core = np.zeros(a.shape[:2], bool)
    core[border:-border, border:-border] = True
    if inside is None:
        inside = core
    elif (inside & core).any():
        inside = inside & core
    channels = [(a, b)] if a.ndim == 2 else [(a[..., c], b[..., c]) for c in range(a.shape[2])]
    count = np.count_nonzero(inside)
    return float(np.mean([_ssim_sum(x, y, peak, inside) / count for x, y in channels]))


#: Rows of the SSIM map made at once: a whole 8192 x 8192 map took ten float64 arrays of
#: its size (5-6 GB) for a Measure panel comparison nobody had asked for.
SSIM_BAND_ROWS = 256


def _ssim_sum(a: np.ndarray, b: np.ndarray, peak: float, inside: np.ndarray) -> float:
    """The sum of the SSIM map of two one-channel images over ``inside``, made band by
    band: each band with the ``SSIM_WINDOW // 2`` rows on either side its windows reach,
    so that every kept row is the whole image's (the image's own top and bottom edges
    are reflected as over the whole image)."""
    reach = SSIM_WINDOW // 2
    total = 0.0
    for top in range(0, a.shape[0], SSIM_BAND_ROWS):
        bottom = min(top + SSIM_BAND_ROWS, a.shape[0])
        first, last = max(0, top - reach), min(a.shape[0], bottom + reach)
        band = _ssim_map(a[first:last], b[first:last], peak)[top - first : bottom - first]
        # A reduction with where= rather than band[inside]: boolean indexing holds the GIL.
        total += float(np.sum(band, where=inside[top:bottom]))
    return total


def _ssim_map(a: np.ndarray, b: np.ndarray, peak: float) -> np.ndarray:
    """The per-pixel SSIM of two one-channel images (float64, scikit-image's formula)."""
    a = np.ascontiguousarray(a, dtype=np.float64)
    b = np.ascontiguousarray(b, dtype=np.float64)

    def window_mean(image: np.ndarray) -> np.ndarray:
        # BORDER_REFLECT repeats the edge pixel, as scipy's "reflect" mode does.
        return cv2.boxFilter(image, cv2.CV_64F, (SSIM_WINDOW, SSIM_WINDOW), borderType=cv2.BORDER_REFLECT)

    samples = SSIM_WINDOW * SSIM_WINDOW
    covariance_scale = samples / (samples - 1)
    mean_a, mean_b = window_mean(a), window_mean(b)
    var_a = covariance_scale * (window_mean(a * a) - mean_a * mean_a)
    var_b = covariance_scale * (window_mean(b * b) - mean_b * mean_b)
    covar = covariance_scale * (window_mean(a * b) - mean_a * mean_b)
    c1, c2 = (SSIM_K1 * peak) ** 2, (SSIM_K2 * peak) ** 2
    numerator = (2 * mean_a * mean_b + c1) * (2 * covar + c2)
    denominator = (mean_a * mean_a + mean_b * mean_b + c1) * (var_a + var_b + c2)
    return numerator / denominator


def difference_image(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Absolute difference ``|a - b|`` as float32, same shape (for a difference layer)."""
    a, b = _image_pair(a, b)
    return np.abs(a.astype(np.float32) - b.astype(np.float32))
