"""Settings shared by the whole test suite."""

import os

# Widget tests need no display; the Makefile sets this too, plain `pytest` must as well.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc
import sys
import threading

import pytest

# Collect garbage only between tests, when no worker runs (see the fixture below): a
# collection on any thread while a worker thread has torch build modules (its first
# import, or the submodules it imports lazily during a run, such as torch._dynamo)
# walks half-built objects and segfaults (faulthandler: "Garbage-collecting"). The
# window does the same (maskwork.app.application.collect_garbage_when_idle).
gc.disable()
#: A full collection walks every object of the session (torch, napari and Qt loaded: about
#: 400,000, 0.2-0.5 s); the objects a test made are all young, so after most tests the
#: young generations are enough, and a full collection every this many tests frees the
#: cycles that outlived their test.
FULL_COLLECTION_EVERY = 25
_tests_since_full_collection = 0


@pytest.fixture(autouse=True)
def isolated_config(tmp_path_factory, monkeypatch):
    """Settings and recovery files of every test go to a fresh folder, never the user's."""
    folder = tmp_path_factory.mktemp("config")
    monkeypatch.setenv("MASKWORK_CONFIG_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def no_thread_left_running():
    """Fail any test that leaves an operator worker or a Python thread running."""
    before = set(threading.enumerate())
    yield
    leaked = []
    workers = sys.modules.get("maskwork.widgets.workers")
    if workers is not None:
        # An operator run still going is a leak; a measurement or a preparation finishes
        # on its own within moments, and only one that hangs is.
        leaked += [f"operator run {w.name}" for w in workers.live_workers() if w.session is not None]
        workers.stop_all_workers(10_000)
        leaked += [f"worker {worker.name}" for worker in workers.live_workers()]
    # Every worker has stopped: a safe moment. What a window's idle collector froze
    # (maskwork.app.application.collect_idle_garbage) is collectable again in later tests.
    gc.unfreeze()
    global _tests_since_full_collection
    _tests_since_full_collection += 1
    if _tests_since_full_collection >= FULL_COLLECTION_EVERY:
        gc.collect()
        _tests_since_full_collection = 0
    else:
        gc.collect(1)
    extra = [t for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
    leaked += [f"thread {t.name}" for t in extra]
    if leaked:
        pytest.fail("test left running: " + ", ".join(leaked))
