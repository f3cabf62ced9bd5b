"""The one worker mechanism: values and errors come back on the main thread, quit cancels,
partial results arrive coalesced, and nothing is left running."""

import dataclasses
import os
import sys
import threading
import weakref

import numpy as np
import pytest
from qtpy.QtCore import QThread
from qtpy.QtWidgets import QApplication

from maskwork.operators import get
from maskwork.operators.context import Result, RunContext
from maskwork.pipeline.session import DONE, RunSession
from maskwork.widgets.workers import live_workers, session_worker, start_worker, stop_all_workers


@pytest.fixture
def main_thread(qapp):
    return QApplication.instance().thread()


def test_the_value_comes_back_on_the_main_thread(qtbot, main_thread):
    threads = []

    def compute(worker):
        threads.append(QThread.currentThread())
        return 6 * 7

    received = []
    start_worker(compute, returned=lambda value: received.append((value, QThread.currentThread() is main_thread)))
    qtbot.waitUntil(lambda: bool(received), timeout=10_000)
    assert received == [(42, True)] and threads[0] is not main_thread
    assert live_workers() == []


def test_an_exception_comes_back_as_the_value_without_an_errored_slot(qtbot):
    received = []

    def compute(worker):
        raise ValueError("unreadable file")

    start_worker(compute, returned=received.append)
    qtbot.waitUntil(lambda: bool(received), timeout=10_000)
    assert isinstance(received[0], ValueError) and str(received[0]) == "unreadable file"


def test_a_system_exit_inside_the_computation_ends_the_worker_as_an_error(qtbot):
    from maskwork.widgets.workers import AbortedComputation

    def compute(worker):
        raise SystemExit(3)

    received = []
    start_worker(compute, returned=received.append)
    qtbot.waitUntil(lambda: bool(received), timeout=10_000)
    assert isinstance(received[0], AbortedComputation) and "SystemExit: 3" in str(received[0])
    assert live_workers() == []


def test_a_finished_worker_and_what_its_computation_holds_are_freed(qtbot):
    """QThreadPool.start hands the runnable to C++, whose reference to the Python worker
    only the runnable's destruction drops: a finished worker must not keep its
    computation's closure (in the window, a run session and its images) for the rest of
    the session, as every worker did (issue 15's memory growth)."""

    class Payload:
        """What a computation captures."""

    payload = Payload()
    payload_alive = weakref.ref(payload)
    received = []
    worker = start_worker(lambda worker, payload=payload: 42, returned=received.append)
    worker_alive = weakref.ref(worker)
    del worker, payload
    qtbot.waitUntil(lambda: worker_alive() is None, timeout=10_000)
    assert received == [42] and payload_alive() is None


def test_quit_stops_the_computation_and_nothing_is_returned(qtbot):
    running = threading.Event()

    def compute(worker):
        ctx = RunContext(cancel_event=worker.cancel_event)
        running.set()
        while True:
            ctx.check()  # raises Cancelled once quit() was called

    returned = []
    worker = start_worker(compute, returned=returned.append, errored=lambda error: None)
    assert running.wait(10)
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        worker.quit()
    assert worker.cancelled and returned == [] and live_workers() == []


def test_a_session_worker_relays_progress_and_coalesces_partials(qtbot):
    offered_all, release = threading.Event(), threading.Event()

    def training(image, ctx, **_):
        for step in range(1, 41):
            ctx.progress(step / 40, f"epoch {step}")
            ctx.partial(np.full(image.shape, step == 40))
        offered_all.set()
        release.wait(10)  # the main thread looks at what is waiting meanwhile
        return Result({"mask": np.ones(image.shape, bool)})

    spec = dataclasses.replace(get("threshold"), func=training)
    session = RunSession(spec, {"image": np.zeros((30, 40), np.uint8)}, {}, "preview")
    worker = session_worker(session)
    progress, shown, outcomes = [], [], []
    worker.progress.connect(lambda fraction, text: progress.append(fraction))
    worker.partial_ready.connect(lambda: shown.append(session.take_partial()))
    worker.returned.connect(outcomes.append)
    worker.start()
    # The main thread is busy (not taking partials) while all 40 are offered.
    assert offered_all.wait(10)
    qtbot.waitUntil(lambda: len(progress) == 40, timeout=5_000)
    release.set()
    qtbot.waitUntil(lambda: bool(outcomes), timeout=5_000)
    assert outcomes[0].status == DONE and progress[-1] == 1.0
    # One signal for 40 offers, and it brings the newest partial.
    assert len(shown) == 1 and shown[0].data.all() and shown[0].data.shape == (30, 40)


def test_stop_all_workers_cancels_every_running_worker(qtbot):
    def endless(worker):
        ctx = RunContext(cancel_event=worker.cancel_event)
        while True:
            ctx.check()

    workers = [start_worker(endless, errored=lambda error: None, name=f"endless {i}") for i in range(3)]
    qtbot.waitUntil(lambda: len(live_workers()) == 3, timeout=10_000)
    assert stop_all_workers(10_000)
    assert live_workers() == [] and all(worker.cancelled for worker in workers)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux keeps a niceness per thread")
def test_workers_run_at_a_lower_priority_than_the_window(qtbot):
    from maskwork.widgets.workers import WORKER_NICENESS

    def compute(worker):
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    received = []
    start_worker(compute, returned=received.append)
    qtbot.waitUntil(lambda: bool(received), timeout=10_000)
    window_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    if window_niceness >= 19:
        pytest.skip("the tests already run at the lowest priority")
    assert received[0] == min(19, window_niceness + WORKER_NICENESS) > window_niceness
