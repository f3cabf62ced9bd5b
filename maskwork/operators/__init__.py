"""Qt-free algorithms and the registry that describes them to every front-end."""

from maskwork.operators.context import Cancelled, InputError, NoObjectYet, Result, RunContext
from maskwork.operators.registry import Display, FilePath, OperatorSpec, ParamSpec, Range, ShownFor, all_operators, get, register

__all__ = [
    "Cancelled",
    "Display",
    "FilePath",
    "InputError",
    "NoObjectYet",
    "OperatorSpec",
    "ParamSpec",
    "Range",
    "Result",
    "RunContext",
    "ShownFor",
    "all_operators",
    "get",
    "register",
]
