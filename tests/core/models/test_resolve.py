"""resolve_model: what operators call with a catalogue name or a path."""

from __future__ import annotations

import pytest

from maskwork.core.models import ModelNotInstalled, UnknownModel, catalogue, model_entry, resolve_model


@pytest.fixture()
def models_folder(tmp_path, monkeypatch):
    """An empty model cache for the test."""
    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setenv("MASKWORK_MODELS", str(folder))
    return folder


def test_an_existing_path_is_returned_as_given(tmp_path, models_folder):
    checkpoint = tmp_path / "my_sam.pth"
    checkpoint.write_bytes(b"weights")
    assert resolve_model(checkpoint) == checkpoint
    assert resolve_model(str(checkpoint)) == checkpoint


def test_an_installed_name_gives_its_cached_file(models_folder):
    cached = models_folder / model_entry("big_lama").file_name
    cached.write_bytes(b"weights")
    assert resolve_model("big_lama") == cached


def test_a_name_not_downloaded_says_how_to_get_it_in_one_line(models_folder):
    with pytest.raises(ModelNotInstalled) as raised:
        resolve_model("sam_vit_b")
    assert str(raised.value) == (
        "model 'sam_vit_b' is not downloaded: Deep learning > Models... or `maskwork models download sam_vit_b`"
    )
    assert isinstance(raised.value, LookupError)


def test_anything_else_lists_the_known_names(models_folder):
    with pytest.raises(UnknownModel) as raised:
        resolve_model("no_such_model")
    assert isinstance(raised.value, ModelNotInstalled)
    for entry in catalogue():
        assert entry.name in str(raised.value)
