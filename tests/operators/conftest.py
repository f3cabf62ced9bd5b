"""Fixtures shared by the operator tests."""

import pytest


@pytest.fixture
def child_calls(monkeypatch):
    """``record(module)``: the functions ``module`` then runs through ``call_warm`` (in
    the warm child process), in a list that the test reads; the calls still happen."""

    def record(module) -> list:
        functions = []
        real = module.call_warm

        def recording(ctx, function, *args, **kwargs):
            functions.append(function)
            return real(ctx, function, *args, **kwargs)

        monkeypatch.setattr(module, "call_warm", recording)
        return functions

    return record
