"""Download, Cancel, resume, hash checks and import against a server on the loopback address."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from types import SimpleNamespace

import pytest

from maskwork.core.models import (
    catalogue,
    installed_path,
    model_entry,
    models_folder,
    partial_bytes,
    remove_model,
    resolve_model,
)
from maskwork.core.models.download import DownloadCancelled, DownloadError, download_model, import_model_file
from maskwork.core.models.hashing import PINNED_FILE_NAME, HashMismatch, file_digests
from tests.model_server import serve_models


@pytest.fixture()
def server(tmp_path, monkeypatch):
    with serve_models(tmp_path, monkeypatch) as state:
        yield state


def cache_files() -> list[str]:
    """Every file under the cache folder, partial downloads included, relative to it."""
    folder = models_folder()
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file())


def test_download_reports_progress_and_installs_the_checked_file(server):
    reports = []
    path = download_model("tiny", progress=reports.append)
    assert path == installed_path(model_entry("tiny")) == resolve_model("tiny")
    assert path.read_bytes() == server.files["/tiny.pt"]
    downloading = [report for report in reports if report.stage == "downloading"]
    assert downloading[-1].done_bytes == downloading[-1].total_bytes == 600 * 1024
    assert all(report.bytes_per_second > 0 for report in downloading)
    assert [r.done_bytes for r in downloading] == sorted(r.done_bytes for r in downloading)
    assert reports[-1].stage == "verifying" and reports[-1].fraction == 1.0
    assert cache_files() == ["tiny.pt"]  # nothing left in .partial


def test_an_md5_from_the_publisher_is_checked(server):
    assert download_model("tiny_md5").read_bytes() == server.files["/tiny_md5.pt"]


def test_cancel_stops_mid_download_and_the_next_attempt_resumes(server):
    server.chunk_delay_s = 0.02  # 37 chunks: about 0.75 s for the whole file
    cancel = threading.Event()

    def cancel_after_first_bytes(report):
        if report.done_bytes > 0:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_model("tiny", progress=cancel_after_first_bytes, cancel=cancel)
    kept = partial_bytes(model_entry("tiny"))
    assert 0 < kept < 600 * 1024
    with pytest.raises(LookupError):
        resolve_model("tiny")  # a partial file is not installed

    server.chunk_delay_s = 0.0
    path = download_model("tiny")
    assert server.range_headers[-1] == f"bytes={kept}-"
    assert path.read_bytes() == server.files["/tiny.pt"]
    assert cache_files() == ["tiny.pt"]


def test_remove_deletes_the_file_and_an_interrupted_download(server):
    download_model("tiny")
    server.cut_after_bytes = 1000
    with pytest.raises(DownloadError):
        download_model("tiny_md5")
    assert cache_files() == [".partial/tiny_md5.pt.part", "tiny.pt"]
    assert remove_model("tiny") and not remove_model("tiny_md5")
    assert cache_files() == []


def test_an_interrupted_download_resumes_with_a_range_request(server):
    server.cut_after_bytes = 256 * 1024
    with pytest.raises(DownloadError, match=r"broke off at 262144 bytes \(.*\); downloading again resumes there"):
        download_model("tiny")
    assert partial_bytes(model_entry("tiny")) == 256 * 1024
    path = download_model("tiny")
    assert server.range_headers == [None, "bytes=262144-"]
    assert path.read_bytes() == server.files["/tiny.pt"]


def test_a_body_shorter_than_the_catalogue_size_is_not_installed(server):
    server.send_length = False  # the catalogue's size is the only total
    server.cut_after_bytes = 256 * 1024
    with pytest.raises(DownloadError, match="closed the connection at 262144 of 614400 bytes; downloading again resumes"):
        download_model("tiny")
    assert cache_files() == [".partial/tiny.pt.part"]
    assert download_model("tiny").read_bytes() == server.files["/tiny.pt"]
    assert server.range_headers[-1] == "bytes=262144-"


def test_a_server_that_ignores_range_sends_the_whole_file_again(server):
    server.cut_after_bytes = 100 * 1024
    with pytest.raises(DownloadError):
        download_model("tiny")
    server.honour_range = False
    assert download_model("tiny").read_bytes() == server.files["/tiny.pt"]


def test_a_wrong_hash_is_refused_and_nothing_is_left_in_the_cache(server):
    with pytest.raises(HashMismatch, match="corrupt: the file's sha256 is .*; nothing was installed"):
        download_model("corrupt")
    assert cache_files() == []


def test_a_model_without_published_hash_is_pinned_at_its_first_download(server, tmp_path):
    entry = model_entry("unpublished")
    first = download_model("unpublished")
    pinned = json.loads((models_folder() / PINNED_FILE_NAME).read_text())
    assert pinned == {entry.file_name: hashlib.sha256(first.read_bytes()).hexdigest()}

    first.unlink()
    server.files["/unpublished.pt"] = b"replaced by someone else" * 1000
    with pytest.raises(HashMismatch, match="pinned at its first download"):
        download_model("unpublished")
    assert not installed_path(entry).exists()


def test_server_gone_gives_one_clear_line(server, monkeypatch, tmp_path):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    records = [dict(vars(model_entry("tiny")), url=f"http://127.0.0.1:{closed_port}/tiny.pt")]
    (tmp_path / "gone.json").write_text(json.dumps(records))
    monkeypatch.setenv("MASKWORK_MODELS_CATALOGUE", str(tmp_path / "gone.json"))
    with pytest.raises(DownloadError) as raised:
        download_model("tiny")
    message = str(raised.value)
    assert message.startswith(f"cannot download tiny: 127.0.0.1:{closed_port} cannot be reached (offline")
    assert message.endswith("`maskwork models import tiny FILE`") and "\n" not in message


def test_a_download_the_disk_cannot_hold_is_refused_before_it_starts(server, monkeypatch):
    monkeypatch.setattr("shutil.disk_usage", lambda path: SimpleNamespace(total=10**9, used=10**9 - 1000, free=1000))
    with pytest.raises(DownloadError, match=r"it needs 614.4 kB more and .* has 1.0 kB free \(set MASKWORK_MODELS"):
        download_model("tiny")
    assert server.range_headers == []


def test_a_missing_file_on_the_server_names_the_http_error(server):
    del server.files["/tiny.pt"]
    with pytest.raises(DownloadError, match=r"cannot download tiny: .*/tiny.pt answered HTTP 404"):
        download_model("tiny")


def test_import_checks_the_hash(server, tmp_path):
    good = tmp_path / "from_usb_stick.pt"
    good.write_bytes(server.files["/tiny.pt"])
    bad = tmp_path / "other.pt"
    bad.write_bytes(server.files["/tiny_md5.pt"])

    with pytest.raises(HashMismatch):
        import_model_file("tiny", bad)
    assert cache_files() == []
    path = import_model_file("tiny", good)
    assert path.read_bytes() == good.read_bytes() and good.exists()
    assert resolve_model("tiny") == path


def test_the_built_in_catalogue_is_complete():
    names = {entry.name for entry in catalogue()}
    assert {"sam_vit_b", "sam_vit_l", "sam_vit_h", "efficient_sam_vitt", "sam2.1_hiera_tiny",
            "sam2.1_hiera_base_plus", "big_lama"} <= names
    for entry in catalogue():
        assert entry.url.startswith("https://") and entry.url.endswith(entry.file_name)
        assert entry.hash_source and entry.hashes  # every built-in model has a cited hash
        for value in entry.hashes:
            algorithm, _, digest = value.partition(":")
            assert len(digest) == {"sha256": 64, "md5": 32, "gitsha1": 40}[algorithm]


def test_file_digests_match_git_and_the_usual_tools(tmp_path):
    empty, hello = tmp_path / "empty", tmp_path / "hello"
    empty.write_bytes(b"")
    hello.write_bytes(b"hello world\n")
    assert file_digests(empty, ["gitsha1", "md5"]) == {
        "gitsha1": "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391",  # git's well-known empty blob
        "md5": "d41d8cd98f00b204e9800998ecf8427e",
    }
    assert file_digests(hello, ["gitsha1", "sha256"]) == {
        "gitsha1": "3b18e512dba79e4c8300dd08aeb37f8e728b8dad",  # `git hash-object hello`
        "sha256": "a948904f2f0f479b8f8197694b30184b0d2ed1c1cd2a1ec0fb85d299a192a447",
    }


def test_a_complete_partial_file_is_verified_and_installed_without_downloading_it_again(server):
    """A stop while the finished file was being verified left it whole in .partial; the
    server answers the next Range request with 416, which used to restart from byte 0."""
    entry = model_entry("tiny")
    partial = installed_path(entry).parent / ".partial" / "tiny.pt.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(server.files["/tiny.pt"])
    assert download_model("tiny").read_bytes() == server.files["/tiny.pt"]
    assert server.range_headers == [f"bytes={600 * 1024}-"]  # one request, answered 416, and no other
    assert cache_files() == ["tiny.pt"]


def test_a_second_download_of_the_same_model_is_refused_while_the_first_runs(server):
    """Two downloads (the window's and a terminal's) appended to one .part file and
    installed a file of the wrong size."""
    server.chunk_delay_s = 0.02
    first_bytes, release = threading.Event(), threading.Event()

    def hold(report):
        if report.done_bytes:
            first_bytes.set()
            release.wait(10)

    first = threading.Thread(target=lambda: download_model("tiny", progress=hold))
    first.start()
    try:
        assert first_bytes.wait(10)
        with pytest.raises(DownloadError, match="tiny is being downloaded already"):
            download_model("tiny")
    finally:
        release.set()
        first.join(30)
    assert installed_path(model_entry("tiny")).read_bytes() == server.files["/tiny.pt"]
    assert cache_files() == ["tiny.pt"]  # no lock file left


@pytest.mark.parametrize("written", ["sha-256:" + "ab" * 32, "sha512:" + "ab" * 64, "ab" * 32, "sha256:" + "ab" * 31,
                                     "md5:" + "zz" * 16])
def test_a_hash_written_wrong_in_a_site_catalogue_is_refused_when_it_is_read(written, tmp_path, monkeypatch):
    """It failed only after the whole download (and each retry downloaded it again)."""
    entry = {"name": "site", "task": "t", "architecture": "torchscript", "file_name": "site.pt", "size_bytes": None,
             "licence": "CC0-1.0", "url": "http://127.0.0.1:9/site.pt", "hashes": [written], "hash_source": "site"}
    (tmp_path / "site.json").write_text(json.dumps([entry]))
    monkeypatch.setenv("MASKWORK_MODELS_CATALOGUE", str(tmp_path / "site.json"))
    with pytest.raises(ValueError, match=r"site: the hash .* is not ALGORITHM:HEX with ALGORITHM one of sha256, md5, gitsha1"):
        catalogue()


@pytest.mark.skipif(not hasattr(__import__("urllib3").response.HTTPResponse, "shutdown"),
                    reason="urllib3 before 2.3: Cancel waits for the read to time out")
def test_cancel_leaves_a_server_that_stopped_sending_at_once(server):
    """A blocked read used to hold Cancel until it timed out (20 s), and then said the
    server could not be reached."""
    server.stall_after_bytes = 64 * 1024
    cancel, arrived, outcome = threading.Event(), threading.Event(), []

    def run():
        try:
            download_model("tiny", cancel=cancel, progress=lambda report: report.done_bytes and arrived.set())
        except Exception as error:  # noqa: BLE001 (the test looks at which)
            outcome.append(error)

    download = threading.Thread(target=run)
    download.start()
    assert arrived.wait(10)
    started = time.monotonic()
    cancel.set()
    download.join(10)
    assert not download.is_alive() and time.monotonic() - started < 2.0
    assert len(outcome) == 1 and isinstance(outcome[0], DownloadCancelled), outcome
    assert 0 < partial_bytes(model_entry("tiny")) < 600 * 1024  # kept for a resume


def test_upper_case_hex_in_a_site_catalogue_is_taken_as_it_means(tmp_path, monkeypatch):
    """PowerShell's Get-FileHash and certutil print upper case; it worked before the hashes
    were checked when the catalogue is read."""
    entry = {"name": "site", "task": "t", "architecture": "torchscript", "file_name": "site.pt", "size_bytes": None,
             "licence": "CC0-1.0", "url": "http://127.0.0.1:9/site.pt", "hashes": ["SHA256:" + "AB" * 32],
             "hash_source": "site"}
    (tmp_path / "site.json").write_text(json.dumps([entry]))
    monkeypatch.setenv("MASKWORK_MODELS_CATALOGUE", str(tmp_path / "site.json"))
    assert model_entry("site").hashes == ("sha256:" + "ab" * 32,)


def test_a_server_that_goes_silent_mid_file_is_said_as_such(server, monkeypatch):
    monkeypatch.setattr("maskwork.core.models.download.READ_TIMEOUT_S", 0.5)
    server.stall_after_bytes = 64 * 1024
    with pytest.raises(DownloadError, match=r"stopped sending \(nothing for 0.5 s\) at 65536 bytes; downloading again"):
        download_model("tiny")


def test_a_416_without_a_size_restarts_rather_than_installing_what_is_there(server):
    """Without Content-Range a 416 does not say the part is whole (a part longer than the
    file was once left by two downloads appending to it)."""
    server.range_in_416 = False
    partial = installed_path(model_entry("unpublished")).parent / ".partial" / "unpublished.pt.part"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(server.files["/unpublished.pt"] + b"appended by another download")
    assert download_model("unpublished").read_bytes() == server.files["/unpublished.pt"]


@pytest.mark.skipif(os.name == "nt", reason="flock is POSIX's")
def test_a_models_folder_without_locks_still_downloads(server, monkeypatch):
    """NFS without lockd answers ENOLCK: every download was refused as "being downloaded"."""
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    assert download_model("tiny").read_bytes() == server.files["/tiny.pt"]


def test_removing_a_model_while_it_downloads_ends_the_download_in_words(server):
    server.chunk_delay_s = 0.01
    removed = []

    def remove_once(report):
        if report.done_bytes and not removed:
            removed.append(remove_model("tiny"))

    with pytest.raises(DownloadError, match="the download of tiny was removed while it ran"):
        download_model("tiny", progress=remove_once)
    assert removed == [False] and not installed_path(model_entry("tiny")).exists()
