"""Cancel stops the formerly slow operators inside their long library calls (issue 15).

Each run is cancelled from another thread as soon as the operator reports the progress
message that comes right before its long step, and must raise Cancelled within
:data:`BOUND_S`. Uncancelled, each of those steps takes several seconds on these images
on a loaded 2-core machine (NL-means ~3 s per megapixel in one call, biharmonic ~2 s,
total variation ~3 s, the unsupervised Wiener sampler ~5 s per channel), so a run that
only checked before and after them would miss the bound. ``benchmarks/cancel_latency.py``
measures every operator at 3 MP.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from maskwork.operators import Cancelled, RunContext, get
from maskwork.operators import stoppable
from maskwork.operators.stoppable import call_stoppable, call_warm

#: Generous, for a loaded machine; the target of the issue is 1 s.
BOUND_S = 2.0


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    """The astronaut at 1200 x 1200 (1.4 MP)."""
    return cv2.resize(data.astronaut(), (1200, 1200), interpolation=cv2.INTER_CUBIC)


def _cancel_latency(op_id: str, inputs: dict, params: dict, before_long_step: str) -> float:
    """Seconds from Cancel to Cancelled for ``op_id``, cancelled once it reports a progress
    message containing ``before_long_step``."""
    reached = threading.Event()
    cancel = threading.Event()

    def on_progress(fraction: float, message: str) -> None:
        if before_long_step in message:
            reached.set()

    outcome: dict = {}

    def work() -> None:
        try:
            get(op_id).run(inputs, params, RunContext(on_progress=on_progress, cancel_event=cancel))
            outcome["end"] = "returned"
        except Cancelled:
            outcome["end"] = "cancelled"
        except Exception as error:
            outcome["end"] = repr(error)
        outcome["at"] = time.perf_counter()

    thread = threading.Thread(target=work)
    thread.start()
    assert reached.wait(60), f"{op_id} never reported {before_long_step!r}"
    asked = time.perf_counter()
    cancel.set()
    thread.join(60)
    assert not thread.is_alive(), f"{op_id} still runs a minute after Cancel"
    assert outcome["end"] == "cancelled"
    return outcome["at"] - asked


def _ellipse(shape, centre, axes) -> np.ndarray:
    hole = np.zeros(shape[:2], np.uint8)
    cv2.ellipse(hole, centre, axes, 30, 0, 360, 1, -1)
    return hole.astype(bool)


@pytest.mark.parametrize(
    "op_id, params, before_long_step",
    [
        ("denoise", {"method": "nl_means"}, "tile 2 of"),
        ("denoise", {"method": "tv_chambolle"}, "Denoise (tv_chambolle)"),
        ("deblur", {"method": "unsupervised_wiener"}, "channel 1 of"),
    ],
    ids=["nl_means", "tv_chambolle", "unsupervised_wiener"],
)
def test_restoration_stops_inside_its_long_step(op_id, params, before_long_step, photo):
    assert _cancel_latency(op_id, {"image": photo}, params, before_long_step) < BOUND_S


def test_biharmonic_inpainting_of_a_large_hole_stops_inside_the_solve(photo):
    # About 45,000 pixels: one sparse solve of seconds.
    hole = _ellipse(photo.shape, (700, 600), (150, 100))
    latency = _cancel_latency("inpaint", {"image": photo, "mask": hole}, {"method": "biharmonic"}, "biharmonic on")
    assert latency < BOUND_S


def test_exemplar_inpainting_stops_within_a_full_resolution_round(photo):
    hole = _ellipse(photo.shape, (700, 600), (150, 100))
    latency = _cancel_latency("inpaint", {"image": photo, "mask": hole}, {"method": "exemplar"}, "at full resolution")
    assert latency < BOUND_S


def test_a_stoppable_call_returns_its_result_and_raises_its_error():
    assert call_stoppable(RunContext(), np.add, np.arange(3), 1).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="could not convert"):
        call_stoppable(RunContext(), float, "not a number")


def test_a_stoppable_call_brings_back_a_large_array_whole_and_says_why_it_failed():
    """Its answer travels as the warm child's does (arrays out of band, read into place):
    a 12 MP float image comes back equal and writable; an answer that cannot be pickled,
    or a child that dies, is a RuntimeError saying so."""
    image = np.random.default_rng(0).random((3000, 4000), np.float32)
    back = call_stoppable(RunContext(), np.copy, image)
    np.testing.assert_array_equal(back, image)
    back[0, 0] = -1.0  # writable, as a result from this process would be
    with pytest.raises(RuntimeError, match="cannot be sent back"):
        call_stoppable(RunContext(), threading.Lock)
    with pytest.raises(RuntimeError, match="without a result"):
        call_stoppable(RunContext(), os._exit, 3)


def test_cancel_ends_a_stoppable_call_at_once():
    cancel = threading.Event()
    timer = threading.Timer(0.5, cancel.set)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(Cancelled):
        call_stoppable(RunContext(cancel_event=cancel), time.sleep, 30)
    timer.join()
    assert time.perf_counter() - started < 0.5 + BOUND_S


def fork_a_holder_and_sleep(pid_file: str, seconds: float) -> None:
    """Run in a child: fork a grandchild that keeps every descriptor the child has (the
    answer pipe among them) for 30 s, write its pid to ``pid_file`` (whole or not at all),
    then sleep."""
    holder = os.fork()
    if holder == 0:
        time.sleep(30)
        os._exit(0)
    with open(pid_file + ".part", "w") as out:
        out.write(str(holder))
    os.replace(pid_file + ".part", pid_file)
    time.sleep(seconds)


def fork_a_holder_and_die(pid_file: str) -> None:
    """Run in a child: fork the holder of :func:`fork_a_holder_and_sleep`, then die at once
    without an answer, as a crash in native code or the kernel's out-of-memory killer
    would end it."""
    import signal

    fork_a_holder_and_sleep(pid_file, 0)
    os.kill(os.getpid(), signal.SIGKILL)


def _rebuild_slowly(value, seconds: float):
    time.sleep(seconds)
    return value


class SlowToUnpickle:
    """A result whose unpickling in the parent takes ``seconds`` (pickling it is quick)."""

    def __init__(self, value, seconds: float) -> None:
        self.value, self.seconds = value, seconds

    def __reduce__(self):
        return _rebuild_slowly, (self.value, self.seconds)


def answer_slow_to_unpickle(value, seconds: float) -> SlowToUnpickle:
    return SlowToUnpickle(value, seconds)


def start_a_warm_child_that_sees_this_module() -> None:
    """Replace the warm child by one started now, with this module on its path (set by
    :func:`holder_pid_file`)."""
    stoppable._WARM_CHILD.stop()
    call_warm(RunContext(), os.getpid)


def cancel_once_the_holder_runs(pid_file: str) -> tuple[threading.Event, threading.Thread, list[float]]:
    """A cancel event, the started thread that sets it as soon as the holder's ``pid_file``
    exists (within 30 s), and the list where it records when."""
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def wait_and_cancel() -> None:
        deadline = time.perf_counter() + 30.0
        while not Path(pid_file).exists() and time.perf_counter() < deadline:
            time.sleep(0.02)
        cancelled_at.append(time.perf_counter())
        cancel.set()

    canceller = threading.Thread(target=wait_and_cancel)
    canceller.start()
    return cancel, canceller, cancelled_at


@pytest.fixture
def holder_pid_file(tmp_path, monkeypatch):
    """A file for the grandchild's pid, whose holder is killed after the test; the child
    finds this module (a test file, not a package) on its PYTHONPATH."""
    import signal
    search_path = os.pathsep.join(filter(None, [str(Path(__file__).parent), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", search_path)
    pid_file = tmp_path / "holder.pid"
    yield str(pid_file)
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the child forks its holder")
@pytest.mark.parametrize("call", [call_stoppable, call_warm], ids=["stoppable", "warm"])
def test_cancel_returns_while_a_process_the_child_started_holds_its_pipe(monkeypatch, holder_pid_file, call):
    """The child is killed, but a process it forked still holds the answer pipe open, so
    the pipe never ends: Cancel still returns at once, and a warm child is replaced."""
    monkeypatch.setattr(stoppable, "DRAIN_SECONDS", 0.2)
    if call is call_warm:
        start_a_warm_child_that_sees_this_module()
    cancel, canceller, cancelled_at = cancel_once_the_holder_runs(holder_pid_file)
    with pytest.raises(Cancelled):
        call(RunContext(cancel_event=cancel), fork_a_holder_and_sleep, holder_pid_file, 30)
    returned = time.perf_counter()
    canceller.join()
    assert Path(holder_pid_file).exists(), "cancelled before the holder was forked"
    assert returned - cancelled_at[0] < 0.2 + BOUND_S
    if call is call_warm:
        assert call_warm(RunContext(), np.add, np.arange(3), 1).tolist() == [1, 2, 3]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the child forks its holder")
@pytest.mark.parametrize("call", [call_stoppable, call_warm], ids=["stoppable", "warm"])
def test_a_child_that_dies_while_a_process_it_started_holds_its_pipe_fails_at_once(holder_pid_file, call):
    """The child dies without an answer, and a process it forked still holds the answer
    pipe open for 30 s: the call says so within moments instead of waiting for that
    process, and a warm child is replaced."""
    if call is call_warm:
        start_a_warm_child_that_sees_this_module()
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="ended without a result"):
        call(RunContext(), fork_a_holder_and_die, holder_pid_file)
    assert time.perf_counter() - started < 1.0 + stoppable.ENDED_CHILD_GRACE_SECONDS + BOUND_S
    if call is call_warm:
        assert call_warm(RunContext(), np.add, np.arange(3), 1).tolist() == [1, 2, 3]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="the child forks its holder")
@pytest.mark.parametrize("call", [call_stoppable, call_warm], ids=["stoppable", "warm"])
def test_cancel_is_seen_while_the_end_of_a_dead_child_is_awaited(holder_pid_file, call):
    """Cancelled as the child dies (a process it forked holding the pipe): the call ends
    as cancelled at once, not after the wait for what the dead child left in the pipe."""
    if call is call_warm:
        start_a_warm_child_that_sees_this_module()
    cancel, canceller, cancelled_at = cancel_once_the_holder_runs(holder_pid_file)
    with pytest.raises(Cancelled):
        call(RunContext(cancel_event=cancel), fork_a_holder_and_die, holder_pid_file)
    returned = time.perf_counter()
    canceller.join()
    # A warm child gets DRAIN_SECONDS to finish; the wait for a dead child's last bytes
    # (ENDED_CHILD_GRACE_SECONDS, longer) must not come on top.
    assert returned - cancelled_at[0] < stoppable.DRAIN_SECONDS + 1.0 < stoppable.ENDED_CHILD_GRACE_SECONDS


def test_an_answer_slow_to_unpickle_after_the_child_ended_is_kept(monkeypatch, holder_pid_file):
    """The child answers and ends; turning its answer back into objects takes longer than
    the wait for a dead child's last bytes: the answer is still the call's result. (The
    fixture puts this module on the child's path.)"""
    monkeypatch.setattr(stoppable, "ENDED_CHILD_GRACE_SECONDS", 0.1)
    result = call_stoppable(RunContext(), answer_slow_to_unpickle, 42, 1.0)
    assert result == 42


@pytest.fixture
def frozen_bundle(tmp_path, monkeypatch):
    """As in a PyInstaller bundle: the executable is maskwork itself, which runs no
    ``python -c`` (a script that runs ``python -m maskwork`` stands in for it)."""
    import sys

    bundle = tmp_path / "maskwork"
    bundle.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m maskwork "$@"\n')
    bundle.chmod(0o755)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(bundle))


def test_a_frozen_bundle_runs_the_stoppable_call_through_its_own_executable(frozen_bundle):
    assert call_stoppable(RunContext(), np.add, np.arange(3), 1).tolist() == [1, 2, 3]


def test_the_warm_child_answers_call_after_call_in_one_process():
    first = call_warm(RunContext(), os.getpid)
    assert first != os.getpid()
    assert call_warm(RunContext(), np.add, np.arange(3), 1).tolist() == [1, 2, 3]
    with pytest.raises(ValueError, match="could not convert"):
        call_warm(RunContext(), float, "not a number")
    assert call_warm(RunContext(), os.getpid) == first, "an error does not end the child"


@pytest.mark.parametrize("drain_s, sleep_s, kept", [(5.0, 1.0, True), (0.3, 30.0, False)], ids=["drained", "killed"])
def test_cancel_drains_a_short_warm_call_and_kills_a_long_one(monkeypatch, drain_s, sleep_s, kept):
    """A call that ends within DRAIN_SECONDS of Cancel leaves the child warm; a longer one
    is killed, and the next call starts a new child. Both raise Cancelled."""
    monkeypatch.setattr(stoppable, "DRAIN_SECONDS", drain_s)
    child = call_warm(RunContext(), os.getpid)
    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    timer.start()
    started = time.perf_counter()
    with pytest.raises(Cancelled):
        call_warm(RunContext(cancel_event=cancel), time.sleep, sleep_s)
    timer.join()
    assert time.perf_counter() - started < min(sleep_s, 0.2 + drain_s) + BOUND_S
    assert (call_warm(RunContext(), os.getpid) == child) == kept


def test_a_call_waiting_for_the_warm_child_can_be_cancelled():
    """While another thread's call has the child, a cancelled call leaves at once."""
    call_warm(RunContext(), os.getpid)  # started, so that the busy call begins at once
    busy = threading.Thread(target=call_warm, args=(RunContext(), time.sleep, 2.0))
    busy.start()
    time.sleep(0.3)
    cancel = threading.Event()
    timer = threading.Timer(0.2, cancel.set)
    started = time.perf_counter()
    timer.start()
    with pytest.raises(Cancelled):
        call_warm(RunContext(cancel_event=cancel), os.getpid)
    assert time.perf_counter() - started < 1.2, "it waited for the busy call instead"
    timer.join()
    busy.join()


def test_an_answer_that_cannot_travel_is_an_error_and_the_child_stays():
    child = call_warm(RunContext(), os.getpid)
    with pytest.raises(RuntimeError, match="cannot be sent back"):
        call_warm(RunContext(), threading.Lock)
    assert call_warm(RunContext(), os.getpid) == child


def test_a_warm_child_that_dies_is_replaced():
    with pytest.raises(RuntimeError, match="without a result"):
        call_warm(RunContext(), os._exit, 3)
    assert call_warm(RunContext(), np.add, np.arange(3), 1).tolist() == [1, 2, 3]


def test_a_frozen_bundle_runs_the_warm_child_through_its_own_executable(frozen_bundle):
    stoppable._WARM_CHILD.stop()  # the next call starts the bundle's own child
    try:
        assert call_warm(RunContext(), np.add, np.arange(3), 1).tolist() == [1, 2, 3]
    finally:
        stoppable._WARM_CHILD.stop()
