"""The warm child's wait for its next call (maskwork.operators.stoppable)."""

import os
import time

from maskwork.operators import stoppable


def test_a_warm_child_gives_freed_memory_back_when_no_call_comes(monkeypatch):
    given_back = []
    monkeypatch.setattr(stoppable, "keeping_freed_memory", lambda: True)
    monkeypatch.setattr(stoppable, "give_back_freed_memory", lambda: given_back.append(True))
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb", buffering=0) as requests, os.fdopen(write_end, "wb", buffering=0) as calls:
        stoppable._wait_for_call(requests, 0.05)
        assert given_back == [True], "nothing came within the idle time"

        calls.write(b"a call")
        started = time.perf_counter()
        stoppable._wait_for_call(requests, 30.0)
        assert time.perf_counter() - started < 5.0, "a call waiting is read at once"
        assert given_back == [True], "and the memory is kept for it"
        assert requests.read(6) == b"a call"


def test_a_child_that_keeps_nothing_does_not_wait(monkeypatch):
    monkeypatch.setattr(stoppable, "keeping_freed_memory", lambda: False)
    read_end, write_end = os.pipe()
    with os.fdopen(read_end, "rb", buffering=0) as requests, os.fdopen(write_end, "wb", buffering=0):
        started = time.perf_counter()
        stoppable._wait_for_call(requests, 30.0)
        assert time.perf_counter() - started < 5.0


def test_the_warm_child_is_alive_once_a_call_started_it():
    from maskwork.operators.context import null_context

    stoppable.call_warm(null_context(), os.getpid)
    assert stoppable.warm_child_alive()
