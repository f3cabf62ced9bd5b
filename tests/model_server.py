"""A model server on the loopback address for the model manager's tests (no internet here).

:func:`serve_models` starts :class:`http.server.ThreadingHTTPServer` on 127.0.0.1 in a
thread, serving small generated files with HTTP Range support, and writes a catalogue
(``MASKWORK_MODELS_CATALOGUE``) whose entries point at it, with an empty model cache
(``MASKWORK_MODELS``). The test can slow the server down (to cancel mid-download) or make
it drop the connection part way (to resume). The server is shut down and its thread
joined when the context ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

#: Bytes the handler writes at a time (and between two throttling pauses).
SERVED_CHUNK_BYTES = 16 * 1024


@dataclass
class ModelServer:
    """What the server serves and how; the tests change the knobs between requests.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:<port>``.
    files : dict
        URL path (``/tiny.pt``) -> content.
    chunk_delay_s : float
        Pause after each chunk of :data:`SERVED_CHUNK_BYTES` (0: as fast as possible).
    cut_after_bytes : int or None
        Close the connection after this many body bytes of the next reply (then reset).
    honour_range : bool
        Whether Range requests get a 206 with the rest (else a 200 with the whole file).
    send_length : bool
        Whether replies carry Content-Length (without it the body ends where the
        connection closes, as HTTP/1.0 allows).
    range_in_416 : bool
        Whether a 416 reply carries ``Content-Range: bytes */SIZE``, as RFC 9110 asks.
    stall_after_bytes : int or None
        Stop sending, without closing, after this many body bytes of the next reply,
        until the test ends (a server that hangs); then reset.
    range_headers : list
        The Range header of each request received (None when absent).
    """

    url: str
    files: dict[str, bytes]
    chunk_delay_s: float = 0.0
    cut_after_bytes: int | None = None
    honour_range: bool = True
    send_length: bool = True
    stall_after_bytes: int | None = None
    range_in_416: bool = True
    range_headers: list[str | None] = field(default_factory=list)
    test_ended: threading.Event = field(default_factory=threading.Event)


def _handler(server_state: ModelServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep the test output quiet
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            content = server_state.files.get(self.path)
            server_state.range_headers.append(self.headers.get("Range"))
            if content is None:
                self.send_error(404, "Not Found")
                return
            start = 0
            asked = self.headers.get("Range", "")
            if asked.startswith("bytes=") and server_state.honour_range:
                start = int(asked[len("bytes="):].partition("-")[0])
                if start >= len(content):
                    self.send_response(416)
                    if server_state.range_in_416:
                        self.send_header("Content-Range", f"bytes */{len(content)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(content) - 1}/{len(content)}")
            else:
                self.send_response(200)
            body = content[start:]
            if server_state.send_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            cut = server_state.cut_after_bytes
            server_state.cut_after_bytes = None
            if cut is not None:
                body = body[:cut]
            stall, server_state.stall_after_bytes = server_state.stall_after_bytes, None
            for offset in range(0, len(body), SERVED_CHUNK_BYTES):
                try:
                    self.wfile.write(body[offset:offset + SERVED_CHUNK_BYTES])
                    self.wfile.flush()
                except OSError:  # the client went away (a cancelled download)
                    return
                if server_state.chunk_delay_s:
                    time.sleep(server_state.chunk_delay_s)
                if stall is not None and offset + SERVED_CHUNK_BYTES >= stall:
                    server_state.test_ended.wait()
                    return
            if cut is not None:
                self.close_connection = True

    return Handler


def model_bytes(size: int, seed: int) -> bytes:
    """Reproducible content of ``size`` bytes (a stand-in for a weight file)."""
    return hashlib.shake_256(b"model %d" % seed).digest(size)


def sha256_of(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def git_blob_id(content: bytes) -> str:
    """What ``git hash-object`` prints for a file of this content."""
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def catalogue_entry(name: str, server_url: str, file_name: str, content: bytes, hashes: list[str]) -> dict:
    """A catalogue record (the fields of ModelEntry) for a file the server serves."""
    return {
        "name": name,
        "task": f"test model {name}",
        "architecture": "test",
        "file_name": file_name,
        "size_bytes": len(content),
        "licence": "CC0-1.0",
        "url": f"{server_url}/{file_name}",
        "hashes": hashes,
        "hash_source": "generated by the test",
    }


@contextlib.contextmanager
def serve_models(tmp_path: Path, monkeypatch) -> Iterator[ModelServer]:
    """Serve four models and point the catalogue and the cache at them for the test.

    ``tiny`` (600 KiB, SHA-256 and Git blob id published), ``tiny_md5`` (200 KiB, MD5 published),
    ``unpublished`` (100 KiB, no hash: pinned at its first download) and ``corrupt``
    (served bytes that do not match its published SHA-256).
    """
    tiny, small, unpublished = model_bytes(600 * 1024, 1), model_bytes(200 * 1024, 2), model_bytes(100 * 1024, 3)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    httpd.daemon_threads = True
    state = ModelServer(
        url=f"http://127.0.0.1:{httpd.server_address[1]}",
        files={"/tiny.pt": tiny, "/tiny_md5.pt": small, "/unpublished.pt": unpublished, "/corrupt.pt": small},
    )
    httpd.RequestHandlerClass = _handler(state)
    entries = [
        catalogue_entry("tiny", state.url, "tiny.pt", tiny, [f"sha256:{sha256_of(tiny)}", f"gitsha1:{git_blob_id(tiny)}"]),
        catalogue_entry("tiny_md5", state.url, "tiny_md5.pt", small, [f"md5:{hashlib.md5(small).hexdigest()}"]),
        catalogue_entry("unpublished", state.url, "unpublished.pt", unpublished, []),
        catalogue_entry("corrupt", state.url, "corrupt.pt", small, [f"sha256:{sha256_of(tiny)}"]),
    ]
    catalogue_file = tmp_path / "catalogue.json"
    catalogue_file.write_text(json.dumps(entries), encoding="utf-8")
    monkeypatch.setenv("MASKWORK_MODELS_CATALOGUE", str(catalogue_file))
    monkeypatch.setenv("MASKWORK_MODELS", str(tmp_path / "models"))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="model server")
    thread.start()
    try:
        yield state
    finally:
        state.test_ended.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join()
