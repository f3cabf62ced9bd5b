"""Seconds to the first preview of each slow restore filter, against the plain library call.

    .venv/bin/python benchmarks/restore_preview.py [--megapixels MP] [--repeats N]

scikit-image's astronaut is upscaled to ``--megapixels`` (default 4) and given Gaussian
noise of sigma 20 (denoisers) or a Gaussian blur of sigma 3 (deblurring). Each method
runs through maskwork's operator the way the window previews it (a context that listens
to partial results) and the seconds to its first partial (the reduced-copy preview) and
to its full-size result are timed; the plain library call the method wraps runs on the
same full-size input in the same process. Times are medians of ``--repeats`` (default 3)
runs, after one warm-up run of each that loads the libraries.

Columns: ``plain`` seconds, maskwork's ``first`` preview and ``final`` result seconds,
``first/plain`` (what a person waits for the first look, as a fraction of the plain call),
and ``PSNR first~final``: how close the stretched preview is to the final image (dB).
Deconvolution restores detail the reduced copy cannot hold, so its previews are further
from the final image than the denoisers' are.
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np
from skimage import data, restoration
from skimage.metrics import peak_signal_noise_ratio

from maskwork.operators.context import RunContext
from maskwork.operators.restore.deblur import deblur, make_psf
from maskwork.operators.restore.denoise import denoise


def plain_calls(noisy: np.ndarray, blurry: np.ndarray, iterations: int) -> dict:
    """The library call behind each method, on the full-size input (float in [0, 1])."""
    noisy_float = noisy / 255.0
    gray_blurry = cv2.cvtColor(blurry, cv2.COLOR_RGB2GRAY) / 255.0
    psf = make_psf("gaussian", sigma=3.0)
    return {
        "nl_means": lambda: cv2.fastNlMeansDenoisingColored(noisy, None, 20, 20, 7, 21),
        "tv_chambolle": lambda: restoration.denoise_tv_chambolle(noisy_float, weight=0.1, channel_axis=-1),
        "wavelet": lambda: restoration.denoise_wavelet(noisy_float, channel_axis=-1, convert2ycbcr=True, rescale_sigma=True),
        # scikit-image's deconvolutions take one channel: the plain call does one, maskwork three.
        "wiener": lambda: restoration.wiener(gray_blurry, psf, 0.01),
        "unsupervised_wiener": lambda: restoration.unsupervised_wiener(gray_blurry, psf, rng=0),
        "richardson_lucy": lambda: restoration.richardson_lucy(gray_blurry, psf, num_iter=iterations),
    }


def time_first_and_final(operator, image: np.ndarray, **params) -> tuple[float, float, np.ndarray, np.ndarray]:
    """Seconds to the first partial and to the result of one previewed run, and both images."""
    first: list = []
    start = time.perf_counter()

    def on_partial(result) -> None:
        if not first:
            first.append((time.perf_counter() - start, result["image"]))

    final = operator(image, ctx=RunContext(on_partial=on_partial), **params)["image"]
    total = time.perf_counter() - start
    seconds, preview = first[0] if first else (total, final)
    return seconds, total, preview, final


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    side = int(round(np.sqrt(args.megapixels * 1e6)))
    photo = cv2.resize(data.astronaut(), (side, side), interpolation=cv2.INTER_CUBIC)
    rng = np.random.default_rng(0)
    noisy = np.clip(photo + rng.normal(0.0, 20.0, photo.shape), 0, 255).astype(np.uint8)
    blurry = cv2.GaussianBlur(photo, (0, 0), 3.0)
    iterations = 10
    cases = {
        "nl_means": (denoise, noisy, {"method": "nl_means", "h": 20.0}),
        "tv_chambolle": (denoise, noisy, {"method": "tv_chambolle"}),
        "wavelet": (denoise, noisy, {"method": "wavelet"}),
        "wiener": (deblur, blurry, {"method": "wiener", "psf_sigma": 3.0}),
        "unsupervised_wiener": (deblur, blurry, {"method": "unsupervised_wiener", "psf_sigma": 3.0}),
        "richardson_lucy": (deblur, blurry, {"method": "richardson_lucy", "psf_sigma": 3.0, "iterations": iterations}),
    }
    plain = plain_calls(noisy, blurry, iterations)
    print(f"astronaut at {side}x{side} ({side * side / 1e6:.1f} MP), medians of {args.repeats} runs")
    print(f"{'method':22s} {'plain s':>8s} {'first s':>8s} {'final s':>8s} {'first/plain':>12s} {'PSNR first~final':>17s}")
    for name, (operator, image, params) in cases.items():
        plain[name]()  # warm-up: library imports and first-call set-up
        time_first_and_final(operator, image, **params)
        plain_seconds, firsts, finals = [], [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            plain[name]()
            plain_seconds.append(time.perf_counter() - start)
            first, final, preview, result = time_first_and_final(operator, image, **params)
            firsts.append(first)
            finals.append(final)
        closeness = peak_signal_noise_ratio(result.astype(np.float64), preview.astype(np.float64), data_range=255)
        plain_median, first_median = statistics.median(plain_seconds), statistics.median(firsts)
        print(
            f"{name:22s} {plain_median:8.2f} {first_median:8.2f} {statistics.median(finals):8.2f}"
            f" {first_median / plain_median:12.3f} {closeness:17.1f}"
        )


if __name__ == "__main__":
    main()
