"""The operator registry: one declaration serves the window, the command line and napari.

An operator is a plain function on numpy arrays::

    @register("grabcut", title="GrabCut", category="Segmentation", outputs=("mask",))
    def grabcut(image, markers=None, *, rect=None,
                iterations: Annotated[int, Range(1, 20)] = 5, ctx=None) -> Result:
        '''numpydoc docstring ...'''

Positional parameters whose names are in :data:`INPUT_NAMES` are its inputs (those without
a default are required); keyword-only parameters are its typed parameters, whose type,
range or choices come from the annotation and whose help comes from the docstring. A
parameter that matters only for some values of a choice (a method's own settings) says so
with :class:`ShownFor`, and forms show it only then. Operators that share parameters
declare them once: ``register(..., parameters_from=source)`` (see :func:`register`).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import math
import pkgutil
import re
import typing
from dataclasses import dataclass
from typing import Any, Callable, Literal

from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.extras import MissingExtra, missing_modules, needs_message

#: Names a function parameter may have to be an input rather than a tunable parameter.
INPUT_NAMES = ("image", "image2", "markers", "mask", "rect", "points")

#: Bound of numeric editors for parameters the registry leaves open: wide, yet inside
#: what a 32-bit spin box holds.
EDITOR_BOUND = 1_000_000_000
#: Largest value of a 32-bit spin box, which bounds declared integer ranges too.
INT32_MAX = 2**31 - 1
#: Most decimals a float editor shows.
MAX_DECIMALS = 8

#: Output kinds an operator may declare.
OUTPUT_KINDS = ("mask", "labels", "probabilities", "image", "transform")


@dataclass(frozen=True)
class Range:
    """Inclusive numeric bounds for a parameter (use inside ``typing.Annotated``)."""

    min: float
    max: float


@dataclass(frozen=True)
class FilePath:
    """Marks a ``str`` parameter as a file to open (use inside ``typing.Annotated``).

    The window shows a Browse button that filters by ``file_filter`` (Qt's
    ``"Models (*.pt *.onnx)"`` syntax); the command line takes the path as text.
    """

    file_filter: str = "All files (*)"


@dataclass(frozen=True, init=False)
class ShownFor:
    """Marks a parameter that matters only for some values of a choice (use inside
    ``typing.Annotated``).

    ``Annotated[float, Range(0.5, 100.0), ShownFor("method", "nl_means")]`` is a parameter
    of the ``"nl_means"`` method only: forms hide it while another method is chosen. The
    choice must be a parameter of the same operator that is always shown.

    Parameters
    ----------
    choice : str
        Name of the controlling choice parameter (``"method"``).
    *values
        The choices for which the parameter matters.
    """

    choice: str
    values: tuple

    def __init__(self, choice: str, *values: Any) -> None:
        if not values:
            raise ValueError(f"ShownFor({choice!r}) names no value of {choice}")
        object.__setattr__(self, "choice", choice)
        object.__setattr__(self, "values", values)


@dataclass(frozen=True)
class Display:
    """How a parameter is shown to a person where its name and values do not say it (use
    inside ``typing.Annotated``); the command line and recipes keep the names.

    Parameters
    ----------
    label : str, optional
        The form's label (default: the name in words, ``patch_size`` -> "Patch size").
    unit : str, optional
        Shown after a number ("px", "grey levels").
    special : str, optional
        Shown instead of the lowest value where that value means something else
        ("automatic" for a size of 0).
    choices : tuple of (choice, words) pairs, optional
        Words for choices whose value does not read as words by itself (default: the
        value with underscores as spaces).
    """

    label: str | None = None
    unit: str | None = None
    special: str | None = None
    choices: tuple = ()


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter, as the GUI form and ``maskwork ops --json`` show it."""

    name: str
    type: str  # "int", "float", "bool", "str", "path" or "choice"
    default: Any
    help: str
    min: float | None = None
    max: float | None = None
    choices: tuple | None = None
    file_filter: str | None = None
    shown_for: ShownFor | None = None
    display: Display = Display()

    @property
    def label(self) -> str:
        """The form's label for the parameter."""
        return self.display.label or self.name.replace("_", " ").capitalize()

    def choice_label(self, choice: Any) -> str:
        """Words for one of the parameter's ``choices``."""
        return dict(self.display.choices).get(choice, str(choice).replace("_", " "))

    def applies(self, values: dict) -> bool:
        """Whether this parameter matters with the parameter values ``values``.

        Parameters
        ----------
        values : dict
            Parameter name -> current value; it holds the controlling choice, if any.

        Returns
        -------
        bool
            False only when the parameter is declared :class:`ShownFor` some choices
            and ``values`` makes another choice. Forms hide it then.
        """
        return self.shown_for is None or values[self.shown_for.choice] in self.shown_for.values

    def coerce(self, value: Any) -> Any:
        """Convert ``value`` (possibly a command-line string) to this type and check it.

        Raises
        ------
        InputError
            When the value has the wrong type or lies outside the range or choices.
        """
        try:
            if self.type == "bool":
                if isinstance(value, str):
                    lowered = value.strip().lower()
                    if lowered not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                        raise ValueError(value)
                    value = lowered in ("1", "true", "yes", "on")
                else:
                    value = bool(value)
            elif self.type == "int":
                as_float = float(value)
                if as_float != int(as_float):
                    raise ValueError(value)
                value = int(as_float)
            elif self.type == "float":
                value = float(value)
                if value != value:  # NaN passes every range check
                    raise ValueError(value)
            elif self.type == "choice":
                # Choices keep their declared type (Literal[4, 8] gives ints): text from
                # the command line or saved settings selects the choice it spells.
                text = str(value).strip()
                value = next((c for c in self.choices if str(c) == text), value)
            else:
                value = str(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: int("inf")
            raise InputError(f"parameter {self.name} must be {self.type}, got {value!r}") from None
        if self.choices is not None and value not in self.choices:
            raise InputError(f"parameter {self.name} must be one of {', '.join(map(str, self.choices))}; got {value!r}")
        if self.min is not None and value < self.min or self.max is not None and value > self.max:
            raise InputError(f"parameter {self.name} must lie in [{self.min}, {self.max}], got {value}")
        return value

    def editor_bounds(self) -> tuple[float, float]:
        """(low, high) for a numeric editor: the declared range, else wide bounds that a
        32-bit spin box still holds."""
        low = self.min if self.min is not None else -EDITOR_BOUND
        high = self.max if self.max is not None else EDITOR_BOUND
        if self.type == "int":
            return max(math.ceil(low), -INT32_MAX), min(math.floor(high), INT32_MAX)
        return low, high

    def editor_step(self) -> float:
        """Spin-box step of a float: a power of ten near 1/100 of the range, or a tenth of
        the default's magnitude when the range is open."""
        if self.min is not None and self.max is not None and self.max > self.min:
            return 10.0 ** round(math.log10((self.max - self.min) / 100))
        default = abs(float(self.default))
        return 10.0 ** (math.floor(math.log10(default)) - 1) if default else 0.1

    def editor_decimals(self) -> int:
        """Decimals of a float editor: three, or more so that neither the step, the
        default nor the minimum rounds away (at most eight)."""
        decimals = max(3, -math.floor(math.log10(self.editor_step())))
        for value in (float(self.default), float(self.min or 0.0)):
            while decimals < MAX_DECIMALS and round(value, decimals) != value:
                decimals += 1
        return min(decimals, MAX_DECIMALS)

    def to_json(self) -> dict:
        """The ``maskwork ops --json`` representation."""
        out = {"name": self.name, "type": self.type, "default": self.default}
        if self.min is not None:
            out["min"] = self.min
        if self.max is not None:
            out["max"] = self.max
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.file_filter is not None:
            out["filter"] = self.file_filter
        if self.shown_for is not None:
            out["shown_for"] = {"param": self.shown_for.choice, "values": list(self.shown_for.values)}
        out["help"] = self.help
        return out


@dataclass(frozen=True)
class Histogram:
    """Panel view: the image's gray-level histogram with the levels a run reports.

    Scores named ``threshold`` or ``threshold_<n>`` are drawn on it as vertical lines.
    """


@dataclass(frozen=True)
class ScorePlot:
    """Panel view: one score of the partial results, plotted while the operator runs.

    Parameters
    ----------
    score : str
        Name of the score in each partial result's ``scores``.
    y_label, x_label : str
        Axis titles: what the score is, and what ``x_score`` counts.
    x_score : str
        Name of the score that places each point along x (the iterations or steps run so
        far: partial results come every few of them). A partial result without it is
        placed at its own number in the run.
    """

    score: str = "metric"
    y_label: str = "metric"
    x_label: str = "iteration"
    x_score: str = "iteration"


@dataclass(frozen=True)
class InfoAction:
    """Panel view: a button that shows a text about the current parameters (Model info).

    Parameters
    ----------
    name : str
        snake_case name; front-ends derive widget names from it (``model_info`` gives the
        button ``modelInfoButton``).
    text : str
        Button text.
    title : str
        Title of the text shown, and the subject of the error when ``describe`` fails.
    tip : str
        What the button shows, as its tooltip.
    describe : callable
        ``describe(params) -> str`` with every parameter, defaults filled in. It may be
        slow (front-ends call it off the UI thread) and raises ValueError or OSError
        with a message to show when there is nothing to describe.
    """

    name: str
    text: str
    title: str
    tip: str
    describe: Callable[[dict], str]


@dataclass(frozen=True)
class Suggestion:
    """Panel view: parameter values estimated from the image, offered when it is chosen.

    Parameters
    ----------
    suggest : callable
        ``suggest(image) -> (text, values)``: a sentence saying what was measured and
        parameter name -> suggested value. Front-ends call it off the UI thread.
    """

    suggest: Callable[[Any], tuple[str, dict]]


#: What an operator may ask its panel to show besides the parameter form.
PANEL_VIEW_TYPES = (Histogram, ScorePlot, InfoAction, Suggestion)


@dataclass(frozen=True)
class OperatorSpec:
    """A registered operator: the function plus everything the front-ends need."""

    id: str
    title: str
    category: str
    func: Callable[..., Result]
    inputs: tuple[str, ...]
    required_inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    params: tuple[ParamSpec, ...]
    requires: tuple[str, ...]
    summary: str
    input_help: dict
    memory_estimate: Callable[[dict, dict], int] | None = None
    prepare: Callable[[dict, dict, RunContext], None] | None = None
    previous_result_input: str | None = None
    panel_views: tuple[Histogram | ScorePlot | InfoAction | Suggestion, ...] = ()
    seed_inputs: tuple[str, ...] = ()

    def estimate_memory(self, inputs: dict, params: dict | None = None) -> int | None:
        """Bytes a run on ``inputs`` with ``params`` is expected to need, or None if unknown.

        Front-ends compare it with the free memory of the chosen device and warn before a
        run that would not fit.
        """
        if self.memory_estimate is None:
            return None
        values = {**self.defaults(), **{name: self.param(name).coerce(v) for name, v in (params or {}).items()}}
        return int(self.memory_estimate(inputs, values))

    def param(self, name: str) -> ParamSpec:
        """The parameter called ``name``."""
        for spec in self.params:
            if spec.name == name:
                return spec
        raise InputError(f"{self.id} has no parameter {name!r}; it has: {', '.join(p.name for p in self.params) or 'none'}")

    def missing_requirements(self) -> list[str]:
        """Python packages this operator needs that are not installed."""
        return missing_modules(self.requires)

    def missing_requirements_message(self) -> str:
        """What to install to run this operator (``"... needs torch: pip install
        'maskwork[dl]'"``), or ``""`` when nothing is missing."""
        missing = self.missing_requirements()
        return needs_message(self.title, missing) if missing else ""

    def defaults(self) -> dict:
        """Parameter name -> default value."""
        return {p.name: p.default for p in self.params}

    def run(self, inputs: dict, params: dict | None = None, ctx: RunContext | None = None) -> Result:
        """Validate ``params`` and call the operator with ``inputs``.

        Parameters
        ----------
        inputs : dict
            Input name -> value (``image``, ``markers``, ``rect``, ...). Unknown names raise.
        params : dict, optional
            Parameter name -> value; strings are converted. Missing ones take defaults.
        ctx : RunContext, optional
            Progress, partial results and cancellation.
        """
        unknown = set(inputs) - set(self.inputs)
        if unknown:
            raise InputError(f"{self.id} does not take {', '.join(sorted(unknown))}")
        missing = [name for name in self.required_inputs if inputs.get(name) is None]
        if missing:
            raise InputError(f"{self.id} needs {', '.join(missing)}")
        values = {name: self.param(name).coerce(value) for name, value in (params or {}).items()}
        if self.missing_requirements():
            raise MissingExtra(self.missing_requirements_message())
        return self.func(**inputs, **values, ctx=ctx or null_context())

    def to_json(self) -> dict:
        """The ``maskwork ops --json`` representation."""
        return {
            "id": self.id,
            "title": self.title,
            "category": self.category,
            "summary": self.summary,
            "inputs": list(self.inputs),
            "required_inputs": list(self.required_inputs),
            "seed_inputs": list(self.seed_inputs),
            "outputs": list(self.outputs),
            "params": [p.to_json() for p in self.params],
            "requires": list(self.requires),
        }


_REGISTRY: dict[str, OperatorSpec] = {}


def register(
    op_id: str,
    *,
    title: str,
    category: str,
    outputs: tuple[str, ...],
    requires: tuple[str, ...] = (),
    memory_estimate: Callable[[dict, dict], int] | None = None,
    prepare: Callable[[dict, dict, RunContext], None] | None = None,
    previous_result_input: str | None = None,
    panel_views: tuple[Histogram | ScorePlot | InfoAction | Suggestion, ...] = (),
    parameters_from: Callable[..., Result] | None = None,
    seed_inputs: tuple[str, ...] = (),
) -> Callable[[Callable[..., Result]], Callable[..., Result]]:
    """Decorator that registers an operator function under ``op_id``.

    Parameters
    ----------
    op_id : str
        Short snake_case id used on the command line (``maskwork run OP``).
    title : str
        Menu text.
    category : str
        Menu path; ``"Segmentation/Watershed"`` nests a submenu.
    outputs : tuple of str
        Kinds from :data:`OUTPUT_KINDS`, the first being the main result.
    requires : tuple of str
        Importable package names needed at run time (checked, never imported here).
    memory_estimate : callable, optional
        ``memory_estimate(inputs, params) -> bytes`` for operators that may exhaust memory
        (deep learning); ``params`` holds every parameter, defaults filled in.
    prepare : callable, optional
        ``prepare(inputs, params, ctx)``: slow work that depends only on the image and the
        parameters (Segment Anything's image encoding), which the window runs in the
        background as soon as they are known, so that the first preview is quick. It
        caches its result where the operator finds it; it may raise InputError when the
        parameters are not complete yet, and return False when it found nothing to do
        (the window then says nothing of it).
    previous_result_input : str, optional
        The input (``"mask"``) that interactive front-ends fill with the operator's own
        result for the same image and seeds minus the newest point, so that each click
        refines the last result (Quick select). Other callers pass it themselves.
    panel_views : tuple
        What interactive front-ends show beside the parameter form, in order: a
        :class:`Histogram`, a live :class:`ScorePlot`, :class:`InfoAction` buttons, a
        :class:`Suggestion` of parameter values; one of each, but any number of buttons.
        The front-ends read this declaration and never test an operator's id, so an
        operator with a plot is one module.
    parameters_from : callable, optional
        A registered operator whose parameters this one shares, so that they are declared
        and documented once. The function's ``**kwargs`` stand for the source's parameters
        it does not name itself, which it passes on (``remove_object(image, mask, *,
        grow=5, ctx=None, **fill)`` calls ``inpaint(..., **fill)``); the registry lists
        them with the source's type, range, default, grouping and documentation. A
        parameter the function does name but its docstring does not document takes the
        source's documentation; it must be declared alike (type, range, choices,
        :class:`ShownFor`), best with one module-level ``Annotated`` alias both use.
    seed_inputs : tuple of str
        Optional inputs of which at least one must be given (GrabCut: a box, scribbles or
        clicks): a recipe without any of them is refused when it is read, not image by
        image. What each holds is still the operator's to judge (two scribble classes).
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", op_id):
        raise ValueError(f"operator id {op_id!r} must be snake_case")
    bad = set(outputs) - set(OUTPUT_KINDS)
    if bad:
        raise ValueError(f"unknown output kinds {bad}")
    unknown_views = [view for view in panel_views if not isinstance(view, PANEL_VIEW_TYPES)]
    if unknown_views:
        raise ValueError(f"{op_id}: unknown panel views {unknown_views}; use {', '.join(t.__name__ for t in PANEL_VIEW_TYPES)}")
    single_views = [type(view) for view in panel_views if not isinstance(view, InfoAction)]
    if len(single_views) != len(set(single_views)):
        raise ValueError(f"{op_id}: a panel shows one view of each kind (only InfoAction may repeat)")

    def decorate(func: Callable[..., Result]) -> Callable[..., Result]:
        if op_id in _REGISTRY:
            raise ValueError(f"operator {op_id!r} is registered twice")
        spec = _build_spec(op_id, title, category, tuple(outputs), tuple(requires), func, parameters_from)
        if previous_result_input is not None and previous_result_input not in spec.inputs:
            raise ValueError(f"{op_id}: previous_result_input {previous_result_input!r} is not one of its inputs")
        if previous_result_input is not None and spec.outputs[0] not in ("mask", "labels"):
            # Front-ends keep the main output, packed, as the next click's previous result.
            raise ValueError(f"{op_id}: an operator that refines its previous result makes a mask or labels first")
        if not set(seed_inputs) <= set(spec.inputs) - set(spec.required_inputs):
            raise ValueError(f"{op_id}: seed_inputs {seed_inputs} are not all optional inputs of it")
        _REGISTRY[op_id] = dataclasses.replace(
            spec,
            memory_estimate=memory_estimate,
            prepare=prepare,
            previous_result_input=previous_result_input,
            panel_views=tuple(panel_views),
            seed_inputs=tuple(seed_inputs),
        )
        return func

    return decorate


def _build_spec(op_id, title, category, outputs, requires, func, source) -> OperatorSpec:
    signature = inspect.signature(func)
    hints = typing.get_type_hints(func, include_extras=True)
    summary, docs = parse_numpydoc(func.__doc__ or "")
    inputs, required, params = [], [], []
    passes_on = None  # the name of the **kwargs that stand for the source's parameters
    for name, parameter in signature.parameters.items():
        if name == "ctx":
            continue
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            passes_on = name
        elif parameter.kind is inspect.Parameter.KEYWORD_ONLY and name not in INPUT_NAMES:
            if parameter.default is inspect.Parameter.empty:
                raise ValueError(f"{op_id}: parameter {name} needs a default")
            params.append(_param_spec(op_id, name, hints.get(name), parameter.default, docs.get(name, "")))
        elif name in INPUT_NAMES:
            inputs.append(name)
            if parameter.default is inspect.Parameter.empty:
                required.append(name)
        else:
            raise ValueError(f"{op_id}: {name} is neither an input ({', '.join(INPUT_NAMES)}) nor keyword-only")
    if "ctx" not in signature.parameters:
        raise ValueError(f"{op_id}: an operator takes ctx=None")
    if source is not None:
        params = _shared_params(op_id, params, source, passes_on is not None)
    elif passes_on is not None:
        raise ValueError(f"{op_id}: **{passes_on} needs parameters_from, the operator whose parameters it passes on")
    _check_shown_for(op_id, params)
    return OperatorSpec(
        id=op_id,
        title=title,
        category=category,
        func=func,
        inputs=tuple(inputs),
        required_inputs=tuple(required),
        outputs=outputs,
        params=tuple(params),
        requires=requires,
        summary=summary,
        input_help={name: docs.get(name, "") for name in inputs},
    )


def _shared_params(op_id: str, params: list[ParamSpec], source: Callable[..., Result], passes_on: bool) -> list[ParamSpec]:
    """``params`` with the help of those their operator leaves undocumented taken from the
    registered operator ``source`` (whose parameters of those names must match), followed,
    when the operator ``passes_on`` keyword arguments, by the source's other parameters."""
    source_spec = next((spec for spec in _REGISTRY.values() if spec.func is source), None)
    if source_spec is None:
        raise ValueError(f"{op_id}: parameters_from names {source.__name__}, which is not a registered operator (register it first)")
    source_params = {param.name: param for param in source_spec.params}
    borrowed = []
    for param in params:
        if not param.help and param.name in source_params:
            source_param = source_params[param.name]
            # Documentation describes type, range, choices and grouping; defaults may differ.
            if dataclasses.replace(source_param, default=param.default, help="") != param:
                raise ValueError(
                    f"{op_id}: parameter {param.name} takes {source_spec.id}'s documentation but is declared "
                    f"differently; annotate both with one shared alias"
                )
            param = dataclasses.replace(param, help=source_param.help)
        borrowed.append(param)
    if passes_on:
        named = {param.name for param in params}
        borrowed += [param for param in source_spec.params if param.name not in named]
    return borrowed


def _check_shown_for(op_id: str, params: list[ParamSpec]) -> None:
    """Raise ValueError unless every :class:`ShownFor` names a choice parameter of the
    operator that is always shown, and values among its choices."""
    by_name = {param.name: param for param in params}
    for param in params:
        if param.shown_for is None:
            continue
        choice = by_name.get(param.shown_for.choice)
        if choice is None or choice.type != "choice" or choice is param:
            raise ValueError(f"{op_id}: parameter {param.name} is shown for {param.shown_for.choice!r}, which is not another choice parameter")
        if choice.shown_for is not None:
            # Forms decide from one parameter's value; a hidden controller would leave its
            # dependants showing for a choice nobody can see.
            raise ValueError(f"{op_id}: parameter {param.name} is shown for {choice.name}, which is itself shown only for some choices")
        unknown = [value for value in param.shown_for.values if value not in choice.choices]
        if unknown:
            raise ValueError(f"{op_id}: parameter {param.name} is shown for {choice.name} {unknown}, which are not among its choices {list(choice.choices)}")


def _param_spec(op_id: str, name: str, hint, default, help_text: str) -> ParamSpec:
    low = high = choices = file_filter = shown_for = None
    display = Display()
    if typing.get_origin(hint) is typing.Annotated:
        base, *extras = typing.get_args(hint)
        for extra in extras:
            if isinstance(extra, Display):
                display = extra
            elif isinstance(extra, Range):
                low, high = extra.min, extra.max
            elif isinstance(extra, FilePath):
                file_filter = extra.file_filter
            elif isinstance(extra, ShownFor):
                if shown_for is not None:
                    raise ValueError(f"{op_id}: parameter {name} has more than one ShownFor")
                shown_for = extra
        hint = base
    if file_filter is not None:
        if hint is not str:
            raise ValueError(f"{op_id}: parameter {name} is a FilePath, so it must be annotated str")
        kind = "path"
    elif typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        kind = "choice"
    elif hint in (bool, int, float, str):
        kind = hint.__name__
    else:
        raise ValueError(f"{op_id}: parameter {name} needs a bool, int, float, str or Literal annotation")
    unknown = [choice for choice, _ in display.choices if choices is None or choice not in choices]
    if unknown:
        raise ValueError(f"{op_id}: parameter {name} has words for {unknown}, which are not among its choices")
    return ParamSpec(name, kind, default, help_text, low, high, choices, file_filter, shown_for, display)


def parse_numpydoc(doc: str) -> tuple[str, dict[str, str]]:
    """The summary and the ``Parameters`` descriptions of a numpydoc docstring.

    Returns
    -------
    summary : str
        First paragraph, joined into one line.
    params : dict
        Parameter name -> its description joined into one line. Entries that document
        several names (``start, end : float``) apply to each.
    """
    lines = inspect.cleandoc(doc).splitlines()
    summary_lines = []
    for line in lines:
        if not line.strip():
            break
        summary_lines.append(line.strip())
    params: dict[str, list[str]] = {}
    in_params = False
    current: list[str] | None = None
    for i, line in enumerate(lines):
        header = i + 1 < len(lines) and re.fullmatch(r"-{3,}", lines[i + 1].strip() or "x")
        if header:
            in_params = line.strip() == "Parameters"
            current = None
            continue
        if not in_params or re.fullmatch(r"-{3,}", line.strip()):
            continue
        if line and not line[0].isspace():
            names = line.split(":")[0]
            current = []
            for name in names.split(","):
                params[name.strip()] = current
        elif current is not None and line.strip():
            current.append(line.strip())
    return _plain(" ".join(summary_lines)), {name: _plain(" ".join(text)) for name, text in params.items()}


def _plain(text: str) -> str:
    """Docstring text as a person reads it in a form or tooltip: reStructuredText roles
    and literals without their markup (``out = in ** gamma`` showed its backticks)."""
    text = re.sub(r":[\w:]+:`~?([^`]+)`", r"\1", text)
    return re.sub(r"``([^`]+)``|`([^`]+)`", lambda match: match.group(1) or match.group(2), text)


_loaded = False


def _ensure_loaded() -> None:
    """Import every module of maskwork.operators once, which runs their @register decorators.

    Modules and family packages are discovered, so adding an operator, or a family, is
    adding a module: no list names them. Operator modules import only numpy, SciPy,
    OpenCV and scikit-image at module level; heavy libraries (SimpleITK, torch) load
    inside the functions that need them.
    """
    global _loaded
    if _loaded:
        return
    import maskwork.operators as package

    for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
        importlib.import_module(info.name)
    _loaded = True


def get(op_id: str) -> OperatorSpec:
    """The operator registered as ``op_id``.

    Raises
    ------
    InputError
        With the list of known ids when there is no such operator.
    """
    _ensure_loaded()
    try:
        return _REGISTRY[op_id]
    except KeyError:
        raise InputError(f"unknown operator {op_id!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def all_operators() -> list[OperatorSpec]:
    """Every registered operator, ordered by category then title."""
    _ensure_loaded()
    return sorted(_REGISTRY.values(), key=lambda spec: (spec.category, spec.title))
