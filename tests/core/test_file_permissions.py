"""Exported files get the permissions a person's umask gives new files, not a temporary file's 0600."""

import os
import stat

import numpy as np
import pytest

from maskwork.core import io


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_exported_image_and_sidecar_follow_the_umask(tmp_path, umask_022):
    path = io.write_mask(tmp_path / "mask.png", np.eye(8, dtype=bool), provenance={"operator": "test"})

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert stat.S_IMODE(os.stat(io.sidecar_path(path)).st_mode) == 0o644


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_stricter_umask_is_kept(tmp_path):
    previous = os.umask(0o077)
    try:
        path = io.write_image(tmp_path / "image.png", np.zeros((4, 4), np.uint8))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
