"""The canvas's zoomed-out tile sampling: maskwork's ``every_nth_pixel`` against numpy's
strided copy (``block[::s, ::s].copy()``) on the blocks a 12 MP layer's tiles cover at
stride 4 (2048 x 2048), for the layer types the canvas draws. Same pixels, checked.

    python benchmarks/tile_sampling.py
"""

from __future__ import annotations

import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from maskwork.widgets.layer_view import every_nth_pixel  # noqa: E402


def best_of(function, repeats: int = 30) -> float:
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    rng = np.random.default_rng(0)
    stride = 4
    print(f"load average {os.getloadavg()[0]:.1f}; 2048 x 2048 block of a 4000 x 3000 layer, stride {stride}, best of 30")
    print(f"{'layer':<22} {'numpy ms':>9} {'maskwork ms':>12} {'ratio':>7}")
    layers = {
        "RGB uint8 (photo)": (rng.random((3000, 4000, 3)) * 255).astype(np.uint8),
        "bool mask": rng.random((3000, 4000)) < 0.5,
        "uint16 labels": (rng.random((3000, 4000)) * 60000).astype(np.uint16),
        "float32 image": rng.random((3000, 4000)).astype(np.float32),
    }
    for name, layer in layers.items():
        block = layer[:2048, :2048]
        assert np.array_equal(every_nth_pixel(block, stride), block[::stride, ::stride])
        plain = best_of(lambda: block[::stride, ::stride].copy())
        ours = best_of(lambda: every_nth_pixel(block, stride))
        print(f"{name:<22} {plain * 1000:>9.2f} {ours * 1000:>12.2f} {ours / plain:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
