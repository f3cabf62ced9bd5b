"""The registry contract, checked on every registered operator, plus its building blocks."""

from __future__ import annotations

import copy
import dataclasses
import json
import subprocess
import sys
import textwrap
from typing import Annotated, Literal

import numpy as np
import pytest
import tiny_models
from skimage import data

from maskwork import cli
from maskwork.core.models import catalogue
from maskwork.operators import (
    Cancelled,
    InputError,
    ParamSpec,
    Range,
    Result,
    RunContext,
    ShownFor,
    all_operators,
    get,
    register,
)
from maskwork.operators import registry
from maskwork.operators.registry import INPUT_NAMES, parse_numpydoc

OPERATORS = all_operators()
RASTER_OUTPUTS = ("mask", "labels", "probabilities", "image")

# ------------------------------------------------------------------ inputs for any operator

H, W = 96, 128


def _image() -> np.ndarray:
    """A 96x128 RGB crop of the astronaut: her face and the helmet around it."""
    return np.ascontiguousarray(data.astronaut()[40:136, 160:288])


def _markers() -> np.ndarray:
    """Foreground stroke in the middle, background strokes along the border."""
    markers = np.zeros((H, W), np.uint8)
    markers[44:50, 44:84] = 1
    markers[30:66, 60:66] = 1
    markers[2:5, 2:-2] = 2
    markers[-5:-2, 2:-2] = 2
    markers[2:-2, 2:5] = 2
    markers[2:-2, -5:-2] = 2
    return markers


def _disc() -> np.ndarray:
    rows, cols = np.ogrid[:H, :W]
    return (rows - H // 2) ** 2 + (cols - W // 2) ** 2 <= 25**2


def _landmark_pairs() -> list[tuple[int, int, int]]:
    fixed = [(20, 30), (70, 40), (50, 100)]
    return [(r, c, k) for k, (r, c) in enumerate(fixed, 1)] + [(r + 3, c - 5, -k) for k, (r, c) in enumerate(fixed, 1)]


def make_inputs(spec) -> dict:
    """Small valid inputs for every input the operator declares."""
    image = _image()
    builders = {
        "image": lambda: image,
        "image2": lambda: np.ascontiguousarray(np.roll(image, (3, -5), axis=(0, 1))),
        "markers": _markers,
        "mask": _disc,
        "rect": lambda: (16, 12, W - 32, H - 24),
        # Registration operators that take points read them as landmark pairs (+k on
        # image, -k on image2); image2 is image rolled by (3, -5), so pairs follow that.
        "points": lambda: _landmark_pairs() if "image2" in spec.inputs else [(H // 2, W // 2, 1)],
    }
    unknown = set(spec.inputs) - set(builders)
    assert not unknown, f"the registry test cannot build inputs {unknown}"
    return {name: builders[name]() for name in spec.inputs}


def _skip_if_unavailable(spec) -> None:
    missing = spec.missing_requirements()
    if missing:
        pytest.skip(f"{spec.id} needs {', '.join(missing)}")


#: Operators that run a file the person brings or downloads (a "path" parameter whose
#: default is no file or a catalogue model, which tests never download): that parameter
#: and how to build a tiny such file (see tiny_models.py).
MODEL_FILES = {
    "run_model": ("model", lambda folder: tiny_models.save_torchscript(tiny_models.bright_pixel_net(), folder / "bright.pt")),
    "segment_anything": ("checkpoint", lambda folder: tiny_models.save_tiny_sam(folder / "tiny_sam.pth")),
    "learned_inpaint": ("model", lambda folder: tiny_models.save_mean_fill_lama(folder / "mean_fill_lama.pt")),
}


@pytest.fixture(scope="module")
def file_params(tmp_path_factory):
    """``file_params(spec)``: the params that point an operator's file parameter at a tiny
    model, built the first time an operator asks ({} for operators that need no file)."""
    folder = tmp_path_factory.mktemp("model_files")
    built: dict[str, dict] = {}

    def params_for(spec) -> dict:
        catalogue_names = {entry.name for entry in catalogue()}
        needed = [
            param.name for param in spec.params
            if param.type == "path" and (not param.default or param.default in catalogue_names)
        ]
        if not needed:
            return {}
        assert spec.id in MODEL_FILES, f"{spec.id} needs a file for {needed}: add a builder to MODEL_FILES"
        name, build = MODEL_FILES[spec.id]
        if spec.id not in built:
            built[spec.id] = {name: str(build(folder))}
        return built[spec.id]

    return params_for


# ------------------------------------------------------------------ registry-wide contract


def test_registry_is_not_empty():
    assert "grabcut" in [spec.id for spec in OPERATORS]


@pytest.mark.parametrize("spec", OPERATORS, ids=lambda spec: spec.id)
def test_operator_contract(spec, file_params):
    _skip_if_unavailable(spec)
    inputs = make_inputs(spec)
    originals = copy.deepcopy(inputs)

    result = spec.run(inputs, file_params(spec))

    assert isinstance(result, Result)
    assert list(result.outputs) == list(spec.outputs), "outputs must be the declared kinds, main one first"
    for kind, value in result.outputs.items():
        if kind in RASTER_OUTPUTS:
            value = np.asarray(value)
            assert value.shape[:2] == (H, W), f"{kind} has shape {value.shape}"
        if kind == "mask":
            assert value.ndim == 2
            assert value.dtype == bool or np.issubdtype(value.dtype, np.integer)
        elif kind == "labels":
            assert value.ndim == 2 and np.issubdtype(value.dtype, np.integer)
        elif kind == "probabilities":
            assert value.ndim == 3 and np.issubdtype(value.dtype, np.floating)
            assert np.all((value >= 0) & (value <= 1))
        elif kind == "transform" and not hasattr(value, "to_json"):
            assert np.asarray(value).shape == (3, 3)
    assert result.iterations >= 0

    # Operators never modify their inputs.
    for name, original in originals.items():
        if isinstance(original, np.ndarray):
            np.testing.assert_array_equal(inputs[name], original, err_msg=f"{spec.id} changed its {name}")
            assert inputs[name].dtype == original.dtype
        else:
            assert inputs[name] == original, f"{spec.id} changed its {name}"


@pytest.mark.parametrize("spec", OPERATORS, ids=lambda spec: spec.id)
def test_cancelled_context_raises(spec, file_params):
    _skip_if_unavailable(spec)
    ctx = RunContext()
    ctx.cancel()
    with pytest.raises(Cancelled):
        spec.run(make_inputs(spec), file_params(spec), ctx)


@pytest.mark.parametrize("spec", OPERATORS, ids=lambda spec: spec.id)
def test_everything_is_documented(spec):
    assert spec.title.strip() and spec.category.strip() and spec.summary.strip()
    assert set(spec.inputs) <= set(INPUT_NAMES)
    assert set(spec.required_inputs) <= set(spec.inputs)
    for name in spec.inputs:
        assert spec.input_help.get(name, "").strip(), f"{spec.id}: input {name} has no help"
    for param in spec.params:
        assert param.help.strip(), f"{spec.id}: parameter {param.name} has no help"
        # The default must itself be a valid value.
        assert param.coerce(param.default) == param.default


@pytest.fixture(scope="module")
def ops_json() -> dict:
    """``maskwork ops --json``, run in-process, by operator id."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["ops", "--json"]) == 0
    entries = json.loads(out.getvalue())
    assert isinstance(entries, list)
    return {entry["id"]: entry for entry in entries}


def test_ops_json_lists_every_operator(ops_json):
    assert sorted(ops_json) == sorted(spec.id for spec in OPERATORS)


@pytest.mark.parametrize("spec", OPERATORS, ids=lambda spec: spec.id)
def test_ops_json_matches_spec(spec, ops_json):
    entry = ops_json[spec.id]
    assert entry["title"] == spec.title
    assert entry["category"] == spec.category
    assert entry["inputs"] == list(spec.inputs)
    assert entry["outputs"] == list(spec.outputs)
    assert [p["name"] for p in entry["params"]] == [p.name for p in spec.params]
    for param, shown in zip(spec.params, entry["params"]):
        assert shown["type"] == param.type
        assert shown["default"] == param.default
        assert shown["help"] == param.help
        for key in ("min", "max"):
            if getattr(param, key) is None:
                assert key not in shown
            else:
                assert shown[key] == getattr(param, key)
        if param.choices is None:
            assert "choices" not in shown
        else:
            assert shown["choices"] == list(param.choices)
        if param.shown_for is None:
            assert "shown_for" not in shown
        else:
            assert shown["shown_for"] == {"param": param.shown_for.choice, "values": list(param.shown_for.values)}


# ------------------------------------------------------------------ ParamSpec.coerce


def test_coerce_int():
    spec = ParamSpec("iterations", "int", 5, "rounds", min=1, max=30)
    assert spec.coerce("5") == 5 and isinstance(spec.coerce("5"), int)
    assert spec.coerce(" 7 ") == 7
    assert spec.coerce(3.0) == 3
    with pytest.raises(InputError, match="iterations"):
        spec.coerce("2.5")
    with pytest.raises(InputError, match="iterations"):
        spec.coerce("abc")
    with pytest.raises(InputError, match=r"\[1, 30\]"):
        spec.coerce("31")
    with pytest.raises(InputError):
        spec.coerce(0)
    for text in ("inf", "-inf", "1e400", "nan"):
        with pytest.raises(InputError, match="must be int"):
            spec.coerce(text)


def test_coerce_float():
    spec = ParamSpec("margin", "float", 0.15, "context", min=0.0, max=2.0)
    assert spec.coerce("0.25") == pytest.approx(0.25)
    assert spec.coerce("2") == 2.0
    with pytest.raises(InputError):
        spec.coerce("-0.1")
    with pytest.raises(InputError):
        spec.coerce("lots")
    # NaN compares false with both bounds; it must not slip through the range check.
    with pytest.raises(InputError, match="must be float"):
        spec.coerce("nan")
    with pytest.raises(InputError):
        spec.coerce("inf")
    unbounded = ParamSpec("offset", "float", 0.0, "shift")
    with pytest.raises(InputError, match="must be float"):
        unbounded.coerce(float("nan"))


def test_coerce_bool():
    spec = ParamSpec("invert", "bool", False, "flip")
    for text in ("true", "True", "1", "yes", "on"):
        assert spec.coerce(text) is True
    for text in ("false", "0", "no", "off"):
        assert spec.coerce(text) is False
    assert spec.coerce(1) is True
    with pytest.raises(InputError, match="invert"):
        spec.coerce("maybe")


def test_coerce_choice():
    spec = ParamSpec("method", "choice", "telea", "which", choices=("telea", "ns"))
    assert spec.coerce("ns") == "ns"
    with pytest.raises(InputError, match="telea, ns"):
        spec.coerce("biharmonic")


# ------------------------------------------------------------------ docstrings and register()


SAMPLE_DOC = """Smooth an image with a Gaussian
    whose width is chosen by the user.

    Longer explanation that is not the summary.

    Parameters
    ----------
    image : ndarray
        The picture.
    sigma : float
        Standard deviation in pixels;
        larger is smoother.
    low, high : float
        Clip limits.

    Returns
    -------
    result : Result
        Not a parameter.
    """


def test_parse_numpydoc():
    summary, params = parse_numpydoc(SAMPLE_DOC)
    assert summary == "Smooth an image with a Gaussian whose width is chosen by the user."
    assert params == {
        "image": "The picture.",
        "sigma": "Standard deviation in pixels; larger is smoother.",
        "low": "Clip limits.",
        "high": "Clip limits.",
    }


def test_parse_numpydoc_leaves_out_the_markup_a_person_would_see():
    summary, params = parse_numpydoc("""Raise ``out = in ** gamma``.

    Parameters
    ----------
    gamma : float
        Below 1 brightens (see :func:`~maskwork.core.pixels.to_float` and `levels`).
    """)
    assert summary == "Raise out = in ** gamma."
    assert params == {"gamma": "Below 1 brightens (see maskwork.core.pixels.to_float and levels)."}


def test_parse_numpydoc_without_parameters():
    assert parse_numpydoc("Just a line.") == ("Just a line.", {})
    assert parse_numpydoc("") == ("", {})


@pytest.fixture
def scratch_registry(monkeypatch):
    """Operators registered inside a test vanish afterwards."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return registry._REGISTRY


def test_register_rejects_a_positional_parameter_that_is_not_an_input(scratch_registry):
    def blur(image, sigma=1.0, *, ctx=None):
        """Blur.

        Parameters
        ----------
        image : ndarray
            Picture.
        sigma : float
            Width.
        """
        return Result({"image": image})

    with pytest.raises(ValueError, match="sigma"):
        register("test_blur", title="Blur", category="Test", outputs=("image",))(blur)
    assert "test_blur" not in scratch_registry


def test_register_rejects_bad_declarations(scratch_registry):
    def needs_ctx(image, *, sigma: float = 1.0):
        return Result({"image": image})

    def untyped(image, *, sigma=1.0, ctx=None):
        return Result({"image": image})

    with pytest.raises(ValueError, match="ctx"):
        register("test_no_ctx", title="T", category="Test", outputs=("image",))(needs_ctx)
    with pytest.raises(ValueError, match="sigma"):
        register("test_untyped", title="T", category="Test", outputs=("image",))(untyped)
    with pytest.raises(ValueError, match="snake_case"):
        register("Not-Snake", title="T", category="Test", outputs=("image",))
    with pytest.raises(ValueError, match="output"):
        register("test_bad_output", title="T", category="Test", outputs=("picture",))
    with pytest.raises(ValueError, match="twice"):
        register("grabcut", title="T", category="Test", outputs=("mask",))(lambda image, *, ctx=None: None)


def test_panel_views_are_declared_once_each_and_only_known_kinds(scratch_registry):
    def show(image, *, ctx=None):
        """Show.

        Parameters
        ----------
        image : ndarray
            Picture.
        """
        return Result({"image": image})

    info = [registry.InfoAction(name, name.title(), "About", "tip", lambda params: "text") for name in ("a", "b")]
    with pytest.raises(ValueError, match="unknown panel views"):
        register("test_plot_widget", title="T", category="Test", outputs=("image",), panel_views=("plot",))
    with pytest.raises(ValueError, match="one view of each kind"):
        register("test_two_plots", title="T", category="Test", outputs=("image",),
                 panel_views=(registry.ScorePlot(), registry.ScorePlot("loss")))
    # Buttons may repeat; the declaration is kept in order for the front-ends.
    register("test_views", title="T", category="Test", outputs=("image",),
             panel_views=(registry.Histogram(), *info))(show)
    assert scratch_registry["test_views"].panel_views == (registry.Histogram(), *info)


def test_register_builds_params_from_annotations(scratch_registry):
    def threshold(
        image,
        mask=None,
        *,
        level: Annotated[float, Range(0.0, 1.0)] = 0.5,
        method: Literal["otsu", "li"] = "otsu",
        invert: bool = False,
        ctx=None,
    ):
        """Threshold an image.

        Parameters
        ----------
        image : ndarray
            Gray picture.
        mask : ndarray, optional
            Where to look.
        level : float
            Cut-off.
        method : {"otsu", "li"}
            How to choose it.
        invert : bool
            Swap sides.
        """
        ctx.check()
        return Result({"mask": np.asarray(image) > level})

    register("test_threshold", title="Threshold", category="Test", outputs=("mask",))(threshold)
    spec = scratch_registry["test_threshold"]
    assert spec.inputs == ("image", "mask") and spec.required_inputs == ("image",)
    assert spec.input_help == {"image": "Gray picture.", "mask": "Where to look."}
    level, method, invert = spec.params
    assert (level.type, level.min, level.max, level.default) == ("float", 0.0, 1.0, 0.5)
    assert (method.type, method.choices) == ("choice", ("otsu", "li"))
    assert (invert.type, invert.help) == ("bool", "Swap sides.")
    assert spec.summary == "Threshold an image."

    image = np.linspace(0, 1, 20).reshape(4, 5)
    assert spec.run({"image": image}, {"level": "0.5"})["mask"].sum() == 10
    with pytest.raises(InputError, match="needs image"):
        spec.run({}, {})
    with pytest.raises(InputError, match="does not take"):
        spec.run({"image": image, "rect": (0, 0, 2, 2)})
    with pytest.raises(InputError, match="no parameter 'sigma'"):
        spec.run({"image": image}, {"sigma": 1})
    with pytest.raises(InputError, match="otsu, li"):
        spec.run({"image": image}, {"method": "yen"})


# ------------------------------------------------------------------ parameter groups


def _smoothing_operator(amount_annotation):
    """A scratch operator with a ``method`` choice and a parameter ``amount`` annotated
    with ``amount_annotation``, documented in numpydoc."""

    def smooth(image, *, method: Literal["box", "gaussian", "median"] = "box", amount=1.0, ctx=None):
        """Smooth an image.

        Parameters
        ----------
        image : ndarray
            Picture.
        method : {"box", "gaussian", "median"}
            Filter.
        amount : float
            How much.
        """
        return Result({"image": image})

    # Set after the definition: this module's annotations are strings that name only
    # module-level objects when the registry evaluates them.
    smooth.__annotations__["amount"] = amount_annotation
    return smooth


def test_shown_for_groups_a_parameter_under_choices_of_a_method(scratch_registry):
    grouped = Annotated[float, Range(0.0, 5.0), ShownFor("method", "box", "gaussian")]
    register("test_smooth", title="Smooth", category="Test", outputs=("image",))(_smoothing_operator(grouped))
    method, amount = scratch_registry["test_smooth"].params
    assert method.shown_for is None and method.applies({"method": "median", "amount": 1.0})
    assert amount.shown_for == ShownFor("method", "box", "gaussian")
    assert (amount.min, amount.max) == (0.0, 5.0)  # the range still applies
    assert amount.applies({"method": "box", "amount": 1.0})
    assert amount.applies({"method": "gaussian", "amount": 1.0})
    assert not amount.applies({"method": "median", "amount": 1.0})
    assert amount.to_json()["shown_for"] == {"param": "method", "values": ["box", "gaussian"]}
    assert "shown_for" not in method.to_json()


@pytest.mark.parametrize(
    ("marker", "error"),
    [
        (ShownFor("mode", "box"), "'mode', which is not another choice parameter"),
        (ShownFor("amount", "box"), "'amount', which is not another choice parameter"),
        (ShownFor("method", "box", "bilateral"), r"\['bilateral'\], which are not among its choices"),
    ],
)
def test_shown_for_must_name_choices_of_a_choice_parameter(scratch_registry, marker, error):
    smooth = _smoothing_operator(Annotated[float, marker])
    with pytest.raises(ValueError, match=error):
        register("test_smooth", title="Smooth", category="Test", outputs=("image",))(smooth)
    assert "test_smooth" not in scratch_registry


def test_shown_for_takes_values_once_per_parameter_from_an_always_shown_choice(scratch_registry):
    with pytest.raises(ValueError, match="names no value"):
        ShownFor("method")
    twice = Annotated[float, ShownFor("method", "box"), ShownFor("method", "median")]
    with pytest.raises(ValueError, match="more than one ShownFor"):
        register("test_twice", title="T", category="Test", outputs=("image",))(_smoothing_operator(twice))

    def nested(
        image,
        *,
        method: Literal["box", "wavelet"] = "box",
        wavelet: Annotated[Literal["haar", "db2"], ShownFor("method", "wavelet")] = "haar",
        levels: Annotated[int, ShownFor("wavelet", "db2")] = 2,
        ctx=None,
    ):
        return Result({"image": image})

    with pytest.raises(ValueError, match="levels is shown for wavelet, which is itself shown only for some choices"):
        register("test_nested", title="T", category="Test", outputs=("image",))(nested)


def test_parameters_from_writes_shared_parameter_documentation_once(scratch_registry):
    group = ShownFor("method", "box", "gaussian")
    amount = Annotated[float, Range(0.0, 5.0), group]
    source = _smoothing_operator(amount)
    register("test_smooth", title="Smooth", category="Test", outputs=("image",))(source)

    def smooth_inside(
        image,
        mask=None,
        *,
        grow: int = 0,
        method: Literal["box", "gaussian", "median"] = "box",
        amount=2.0,  # another default keeps the documentation true
        ctx=None,
    ):
        """Smooth an image inside a mask; the smoothing parameters are smooth's.

        Parameters
        ----------
        image : ndarray
            Picture.
        mask : ndarray, optional
            Where.
        grow : int
            Pixels the mask grows by.
        method : {"box", "gaussian", "median"}
            Filter, as in smooth.
        """
        return Result({"image": image})

    smooth_inside.__annotations__["amount"] = amount
    register("test_smooth_inside", title="T", category="Test", outputs=("image",), parameters_from=source)(
        smooth_inside
    )
    grow, method, borrowed = scratch_registry["test_smooth_inside"].params
    assert (grow.help, method.help) == ("Pixels the mask grows by.", "Filter, as in smooth.")  # its own win
    assert (borrowed.help, borrowed.default, borrowed.shown_for) == ("How much.", 2.0, group)


def test_parameters_from_needs_a_registered_source_declaring_the_parameter_alike(scratch_registry):
    source = _smoothing_operator(float)
    with pytest.raises(ValueError, match="not a registered operator"):
        register("test_early", title="T", category="Test", outputs=("image",), parameters_from=source)(
            _smoothing_operator(float)
        )
    register("test_smooth", title="Smooth", category="Test", outputs=("image",))(source)

    def undocumented(image, *, amount: Annotated[float, Range(0.0, 5.0)] = 1.0, ctx=None):
        return Result({"image": image})

    with pytest.raises(ValueError, match="amount takes test_smooth's documentation but is declared differently"):
        register("test_drifted", title="T", category="Test", outputs=("image",), parameters_from=source)(
            undocumented
        )
    assert "test_drifted" not in scratch_registry


def test_parameters_from_lists_the_source_parameters_that_kwargs_pass_on(scratch_registry):
    source = _smoothing_operator(Annotated[float, Range(0.0, 5.0), ShownFor("method", "box", "gaussian")])
    register("test_smooth", title="Smooth", category="Test", outputs=("image",))(source)

    def smooth_twice(image, *, passes: Annotated[int, Range(1, 4)] = 2, ctx=None, **smoothing):
        """Smooth an image several times.

        Parameters
        ----------
        image : ndarray
            Picture.
        passes : int
            How often.
        """
        return Result({"image": image}, scores={"passes": passes, **smoothing})

    register("test_smooth_twice", title="T", category="Test", outputs=("image",), parameters_from=source)(smooth_twice)
    spec = scratch_registry["test_smooth_twice"]
    source_spec = scratch_registry["test_smooth"]
    assert spec.params == (spec.params[0], *source_spec.params)
    assert spec.params[0].name == "passes"
    assert spec.defaults() == {"passes": 2, "method": "box", "amount": 1.0}
    # The registry checks and passes the source's parameters as keywords.
    assert spec.run({"image": np.zeros((2, 2))}, {"amount": "3"}).scores == {"passes": 2, "amount": 3.0}
    with pytest.raises(InputError, match=r"\[0.0, 5.0\]"):
        spec.run({"image": np.zeros((2, 2))}, {"amount": 9})

    def unsourced(image, *, ctx=None, **smoothing):
        return Result({"image": image})

    with pytest.raises(ValueError, match=r"\*\*smoothing needs parameters_from"):
        register("test_unsourced", title="T", category="Test", outputs=("image",))(unsourced)


def test_shared_fill_and_superpixel_parameters_are_the_sources_own():
    for source_id, sharer_id in (("inpaint", "remove_object"), ("superpixels", "merge_superpixels")):
        source, sharer = get(source_id), get(sharer_id)
        for param in sharer.params:
            if param.name in {p.name for p in source.params}:
                ours = source.param(param.name)
                assert dataclasses.replace(param, help="", default=None) == dataclasses.replace(ours, help="", default=None)
    assert get("remove_object").param("patch_size").help == get("inpaint").param("patch_size").help


# --------------------------------------------------------- no Qt in core/operators/pipeline/cli


FORBIDDEN = ("PySide6", "shiboken6", "pyqtgraph", "superqt", "napari", "torch", "SimpleITK", "dask", "distributed")


def test_core_operators_pipeline_and_cli_import_no_gui_or_heavy_libraries():
    script = textwrap.dedent(
        f"""
        import importlib, json, pkgutil, sys
        import maskwork.core, maskwork.operators, maskwork.pipeline, maskwork.cli
        walked = []
        for package in (maskwork.core, maskwork.operators, maskwork.pipeline):
            for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                importlib.import_module(info.name)
                walked.append(info.name)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {FORBIDDEN!r})
        print(json.dumps({{"walked": walked, "loaded": loaded}}))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "maskwork.operators.segmentation.grabcut" in report["walked"]
    assert "maskwork.core.io" in report["walked"]
    assert "maskwork.pipeline.batch" in report["walked"]
    assert report["loaded"] == [], f"imported {report['loaded']}"


def test_seed_inputs_are_optional_inputs_and_listed_for_front_ends():
    from maskwork.operators.registry import register

    spec = get("grabcut")
    assert spec.seed_inputs == ("rect", "markers", "points") and spec.to_json()["seed_inputs"] == list(spec.seed_inputs)
    with pytest.raises(ValueError, match="seed_inputs .* are not all optional inputs"):
        @register("seedless_test_op", title="t", category="Test", outputs=("mask",), seed_inputs=("image",))
        def seedless_test_op(image, markers=None, *, ctx=None):
            """Nothing."""
