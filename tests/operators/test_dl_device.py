"""Shared deep-learning helpers: device choice, tiling that blends without seams, keys."""

import numpy as np
import pytest

from maskwork.operators.context import Cancelled, InputError, RunContext
from maskwork.operators.dl import device as dl_device


@pytest.fixture(autouse=True)
def _restore_preference():
    yield
    dl_device.set_preferred_device("auto")


def test_auto_resolves_to_a_device_torch_can_use(monkeypatch):
    monkeypatch.delenv("MASKWORK_DEVICE", raising=False)
    torch = dl_device.import_torch()
    chosen = dl_device.resolve_device("auto")
    if torch.cuda.is_available():
        assert chosen.type == "cuda"
    else:
        assert chosen.type in ("mps", "cpu")
    assert dl_device.resolve_device("cpu").type == "cpu"


def test_preference_and_environment_decide_what_auto_means(monkeypatch):
    monkeypatch.setenv("MASKWORK_DEVICE", "cpu")
    assert dl_device.preferred_device() == "cpu"
    assert dl_device.resolve_device("auto").type == "cpu"
    dl_device.set_preferred_device("mps")
    assert dl_device.preferred_device() == "mps"  # the window's setting beats the environment
    with pytest.raises(InputError):
        dl_device.set_preferred_device("tpu")


def test_unavailable_device_is_a_clear_error():
    torch = dl_device.import_torch()
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(InputError, match="CUDA"):
        dl_device.resolve_device("cuda")


def test_half_precision_only_on_gpus():
    torch = dl_device.import_torch()
    assert not dl_device.uses_half_precision(torch.device("cpu"))
    assert dl_device.uses_half_precision(torch.device("cuda"))


def test_memory_is_known_and_formatted():
    torch = dl_device.import_torch()
    assert dl_device.available_memory(torch.device("cpu")) > 100 * 2**20
    assert dl_device.format_bytes(512) == "512 bytes"
    assert dl_device.format_bytes(1.5 * 2**30) == "1.5 GB"


def test_out_of_memory_becomes_an_input_error():
    torch = dl_device.import_torch()
    with pytest.raises(InputError, match="out of memory"):
        with dl_device.out_of_memory_as_input_error(torch.device("cpu")):
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
    with pytest.raises(RuntimeError, match="shape"):
        with dl_device.out_of_memory_as_input_error(torch.device("cpu")):
            raise RuntimeError("shape mismatch")


def test_image_key_follows_content():
    image = np.zeros((8, 9, 3), np.uint8)
    changed = image.copy()
    changed[4, 4, 1] = 1
    assert dl_device.image_key(image) == dl_device.image_key(image.copy())
    assert dl_device.image_key(image) != dl_device.image_key(changed)
    assert dl_device.image_key(image) != dl_device.image_key(image, "other model")
    assert dl_device.image_key(image) != dl_device.image_key(image.reshape(9, 8, 3))


@pytest.mark.parametrize("length, tile, overlap", [(10, 16, 4), (100, 32, 8), (97, 32, 0), (64, 32, 31)])
def test_tiles_cover_the_whole_length(length, tile, overlap):
    starts = dl_device.tile_starts(length, tile, overlap)
    covered = np.zeros(length, bool)
    for start in starts:
        covered[start : start + tile] = True
    assert covered.all()
    assert starts[-1] + min(tile, length) == length
    assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


def test_tiled_prediction_of_a_pixelwise_model_equals_the_whole_image():
    rng = np.random.default_rng(0)
    image = rng.random((150, 230, 3), dtype=np.float32)

    def pixelwise(piece):
        return np.stack([piece[..., 0] * 2, piece.sum(axis=2)], axis=2)

    tiled = dl_device.predict_tiled(pixelwise, image, tile=64, overlap=16)
    np.testing.assert_allclose(tiled, pixelwise(image), rtol=1e-5, atol=1e-6)


def test_tiled_prediction_blends_seams_away():
    """A model that sees only its tile (offset by the tile's mean) leaves no hard seams."""
    image = np.tile(np.linspace(0, 1, 256, dtype=np.float32), (64, 1))

    def tile_biased(piece):
        return (piece - piece.mean() + 0.5)[..., None]

    hard = dl_device.predict_tiled(tile_biased, image, tile=64, overlap=0)[..., 0]
    blended = dl_device.predict_tiled(tile_biased, image, tile=64, overlap=32)[..., 0]
    assert np.abs(np.diff(blended, axis=1)).max() < np.abs(np.diff(hard, axis=1)).max() / 2


def test_tiled_prediction_reports_progress_and_cancels():
    image = np.zeros((100, 100), np.float32)
    seen = []
    ctx = RunContext(on_progress=lambda fraction, message: seen.append(fraction))
    dl_device.predict_tiled(lambda piece: piece[..., None], image, tile=40, overlap=10, ctx=ctx, progress=(0.5, 1.0))
    assert seen[0] > 0.5 and seen[-1] == 1.0 and seen == sorted(seen)

    ctx = RunContext()
    ctx.cancel()
    with pytest.raises(Cancelled):
        dl_device.predict_tiled(lambda piece: piece[..., None], image, tile=40, overlap=10, ctx=ctx)
    with pytest.raises(InputError):
        dl_device.predict_tiled(lambda piece: piece[..., None], image, tile=40, overlap=40)


class _ThreadCount:
    """Stands in for torch's thread setting."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def get_num_threads(self) -> int:
        return self.threads

    def set_num_threads(self, threads: int) -> None:
        self.threads = threads


def test_torch_threads_leave_the_cores_an_interactive_front_end_keeps(monkeypatch):
    monkeypatch.setattr(dl_device, "_cores_left_free", 0)
    monkeypatch.setattr(dl_device.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    torch = _ThreadCount(8)
    dl_device._limit_cpu_threads(torch)
    assert torch.threads == 4, "the command line: every usable core, not the machine's count"

    dl_device.leave_cores_free(1)
    dl_device._limit_cpu_threads(torch)
    assert torch.threads == 3, "the window: one core stays for its UI thread"

    monkeypatch.setattr(dl_device.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    dl_device._limit_cpu_threads(torch)
    assert torch.threads == 1, "never fewer than one thread"
    with pytest.raises(ValueError):
        dl_device.leave_cores_free(-1)
