"""``maskwork models`` against a model server on the loopback address."""

from __future__ import annotations

import pytest

from maskwork.cli import EXIT_BAD_INPUT, main
from maskwork.core.models import installed_path, model_entry, models_folder
from tests.model_server import serve_models


@pytest.fixture()
def server(tmp_path, monkeypatch):
    with serve_models(tmp_path, monkeypatch) as state:
        yield state


def test_list_shows_every_model_and_the_folder(server, capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split() == ["name", "size", "licence", "state", "task"]
    assert any(line.startswith("sam_vit_b ") and "375.0 MB" in line and "not downloaded" in line for line in lines)
    assert any(line.startswith("tiny ") and "614.4 kB" in line for line in lines)
    assert f"models folder: {models_folder()}" in out


def test_download_draws_a_progress_bar_then_path_and_remove(server, capsys):
    assert main(["models", "download", "tiny"]) == 0
    captured = capsys.readouterr()
    cached = installed_path(model_entry("tiny"))
    assert captured.out == f"{cached}\n"
    assert f"\rtiny downloading [{'#' * 30}] 100%  614.4 kB / 614.4 kB  " in captured.err
    assert captured.err.split("\n")[0].endswith("B/s")  # the rate
    assert captured.err.endswith(f"\rtiny verifying   [{'#' * 30}] 100%  614.4 kB / 614.4 kB\n")
    assert cached.read_bytes() == server.files["/tiny.pt"]

    assert main(["models", "list"]) == 0
    assert any(line.startswith("tiny ") and "installed" in line for line in capsys.readouterr().out.splitlines())

    assert main(["models", "path", "tiny"]) == 0
    assert capsys.readouterr().out == f"{cached}\n"

    assert main(["models", "remove", "tiny"]) == 0
    assert capsys.readouterr().out == f"removed tiny ({cached})\n"
    assert not cached.exists()
    assert main(["models", "remove", "tiny"]) == 0
    assert capsys.readouterr().out == "tiny was not downloaded\n"


def test_failures_are_one_line_with_exit_code_2(server, capsys, tmp_path):
    assert main(["models", "path", "tiny"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err == (
        "maskwork: error: model 'tiny' is not downloaded: Deep learning > Models... or "
        "`maskwork models download tiny`\n"
    )
    assert main(["models", "download", "corrupt"]) == EXIT_BAD_INPUT
    assert capsys.readouterr().err.splitlines()[-1].startswith("maskwork: error: corrupt: the file's sha256 is ")
    assert main(["models", "download", "nonsense"]) == EXIT_BAD_INPUT
    assert "known models: sam_vit_b" in capsys.readouterr().err


def test_import_a_file(server, capsys, tmp_path):
    copy = tmp_path / "copy.pt"
    copy.write_bytes(server.files["/tiny_md5.pt"])
    assert main(["models", "import", "tiny_md5", str(copy)]) == 0
    assert capsys.readouterr().out == f"{installed_path(model_entry('tiny_md5'))}\n"
