"""The run session every front-end shares: input policy, result checks, partials, layers."""

import dataclasses
import threading

import numpy as np
import pytest
from skimage import data, filters

from maskwork.operators import get
from maskwork.operators.context import InputError, Result
from maskwork.operators.registration.transform import Transform
from maskwork.pipeline.session import (
    CANCELLED,
    DONE,
    FAILED,
    INPUT_ERROR,
    FaultyResult,
    RunSession,
    check_result,
    choose_sources,
    collect_inputs,
    preview_of,
    result_layers,
)


class Named:
    """A stand-in for a front-end's layer object."""

    def __init__(self, name):
        self.name = name


def _with_func(op_id, func):
    return dataclasses.replace(get(op_id), func=func)


# ----------------------------------------------------------------------------- inputs


def test_the_bottom_image_is_the_image_and_the_topmost_other_the_moving_one():
    fixed, result, moving = Named("fixed"), Named("result"), Named("moving")
    images_topmost_first = [moving, result, fixed]
    chosen = choose_sources(get("register_intensity"), {"image": images_topmost_first, "image2": images_topmost_first})
    assert chosen == {"image": fixed, "image2": moving}


def test_the_selected_layer_feeds_the_input_it_fits_and_no_layer_feeds_two():
    photo, scribbles, old, new = Named("photo"), Named("scribbles"), Named("old mask"), Named("new mask")
    candidates = {"image": [photo], "markers": [scribbles], "mask": [new, old]}
    spec = dataclasses.replace(get("grabcut"), inputs=("image", "markers", "mask"))
    assert choose_sources(spec, candidates)["mask"] is new
    assert choose_sources(spec, candidates, selected=old)["mask"] is old
    # One image only: register_intensity's image2 stays empty rather than reusing it.
    assert choose_sources(get("register_intensity"), {"image": [photo], "image2": [photo]}) == {"image": photo}
    # ... also when the person's two choices are that one image (both lists offer only it).
    assert choose_sources(get("register_intensity"), {"image": [photo], "image2": [photo]},
                          chosen_by_person={"image": photo, "image2": photo}) == {"image": photo}
    with pytest.raises(InputError, match=r"Intensity-based \(SimpleITK\) needs a second image layer first"):
        collect_inputs(get("register_intensity"), {"image": data.camera()})


def test_inputs_are_snapshots_and_empty_seeds_count_as_none():
    image = data.camera()
    markers = np.zeros(image.shape, np.uint8)
    markers[10:20, 10:20] = 1
    inputs = collect_inputs(get("random_walker"), {"image": image, "markers": markers, "points": []})
    markers[:] = 2  # the person keeps drawing
    assert inputs["markers"].max() == 1 and "points" not in inputs
    empty = collect_inputs(get("random_walker"), {"image": image, "markers": np.zeros_like(markers)})
    assert "markers" not in empty
    with pytest.raises(InputError, match="Threshold needs an image first"):
        collect_inputs(get("threshold"), {})


def test_a_session_can_copy_the_scribbles_in_its_worker_while_painting_goes_on():
    from maskwork.core.layers import Layer, is_lent

    image = data.camera()
    scribbles = Layer(np.zeros(image.shape, np.uint8), "markers", "scribbles")
    scribbles.write((slice(10, 20), slice(10, 20)), 1)
    scribbles.write((slice(300, 310), slice(10, 20)), 2)
    inputs = collect_inputs(get("random_walker"), {"image": image, "markers": scribbles.data}, copy_editable=False)
    assert inputs["markers"] is scribbles.data, "nothing is copied on the front-end's thread"
    session = RunSession(get("random_walker"), inputs, {}, "preview", copy_in_worker=True)
    assert is_lent(inputs["markers"])
    lent = inputs["markers"]
    scribbles.write((slice(100, 110), slice(100, 110)), 1)  # the person paints before the worker starts
    assert scribbles.data is not lent and lent[105, 105] == 0, "the stroke went into the layer's own copy"
    outcome = session.execute()
    assert outcome.status == DONE
    assert session.inputs["markers"] is not lent and not is_lent(lent)
    assert session.inputs["markers"][105, 105] == 0 and session.inputs["markers"][15, 15] == 1



def test_an_operator_that_refines_its_result_gets_it_packed_in_the_worker():
    image = data.coins()
    session = RunSession(get("click_select"), {"image": image, "points": [(120, 170, 1)]}, {}, "preview")
    outcome = session.execute()
    assert outcome.status == DONE
    bits, shape = outcome.packed_output
    mask = outcome.result.outputs["mask"]
    assert shape == mask.shape and (np.unpackbits(bits, count=mask.size).reshape(shape) == (mask != 0)).all()
    threshold = RunSession(get("threshold"), {"image": image}, {}, "preview").execute()
    assert threshold.packed_output is None, "only operators that refine their previous result"


# ----------------------------------------------------------------------------- results


@pytest.mark.parametrize(
    "result, match",
    [
        (np.zeros((8, 8), bool), "not a Result"),
        (Result({"labels": np.zeros((8, 8), np.int32)}), "undeclared"),
        (Result({}), "no mask"),
        (Result({"mask": np.zeros((4, 8), bool)}), "mask of 8x4 for an image of 8x8"),
        (Result({"mask": np.zeros((8, 8, 2), bool)}), "3 dimensions"),
    ],
)
def test_a_result_that_breaks_the_declaration_is_refused(result, match):
    with pytest.raises(FaultyResult, match=match):
        check_result(get("threshold"), result, {"image": np.zeros((8, 8), np.uint8)})


def test_non_finite_probabilities_are_refused():
    spec = get("random_walker")
    probabilities = np.full((8, 8, 2), 0.5, np.float32)
    probabilities[0, 0, 0] = np.nan
    with pytest.raises(FaultyResult, match="non-finite"):
        check_result(spec, Result({"labels": np.ones((8, 8), np.int32), "probabilities": probabilities}),
                     {"image": np.zeros((8, 8))})


def test_probability_planes_are_named_by_class_ids_else_by_the_scribbles():
    spec = get("random_walker")
    labels = np.ones((8, 8), np.int32)
    planes = np.full((8, 8, 2), 0.5, np.float32)
    markers = np.zeros((8, 8), np.uint8)
    markers[0, 0], markers[7, 7] = 2, 5
    by_markers = result_layers(spec, Result({"labels": labels, "probabilities": planes}), {"markers": markers})
    assert [layer.name for layer in by_markers] == ["Random walker labels", "Random walker P(class 2)",
                                                    "Random walker P(class 5)"]
    by_ids = result_layers(spec, Result({"labels": labels, "probabilities": planes}, class_ids=(0, 1)), {})
    assert [layer.class_id for layer in by_ids[1:]] == [0, 1]
    assert all(layer.kind == "image" and layer.output == "probabilities" for layer in by_ids[1:])


def test_a_transform_alone_adds_the_warped_moving_image():
    moving = np.zeros((20, 30), np.uint8)
    moving[5, 7] = 255
    matrix = np.array([[1.0, 0, 3], [0, 1, 2], [0, 0, 1]])
    transform = Transform("translation", matrix, (20, 30), (20, 30))
    spec = dataclasses.replace(get("register_landmarks"), outputs=("transform",))
    (layer,) = result_layers(spec, Result({"transform": transform}), {"image2": moving})
    assert layer.name.endswith(" image") and layer.data[7, 10] == 255 and layer.transform is transform


def test_a_bool_mask_previews_without_a_copy_and_a_reduced_partial_is_stretched():
    mask = np.zeros((40, 60), bool)
    mask[10:30, 20:40] = True
    preview = preview_of(mask, get("threshold"), (40, 60))
    assert preview.kind == "mask" and preview.data.dtype == np.uint8 and np.shares_memory(preview.data, mask)
    reduced = preview_of(Result({"mask": mask[::2, ::2]}), get("threshold"), (40, 60))
    assert reduced.data.shape == (40, 60) and reduced.bounds is None
    assert (reduced.data == mask).mean() > 0.97


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, np.int64])
def test_labels_preview_in_the_labels_layers_type_so_the_window_does_not_convert_them(dtype):
    labels = np.zeros((40, 60), dtype)
    labels[10:30, 20:40] = 2
    preview = preview_of(Result({"labels": labels}), get("scribble_cnn"), (40, 60))
    assert preview.kind == "labels" and preview.data.dtype == np.uint16 and (preview.data == labels).all()
    too_large = labels.astype(np.int64) + 70_000
    assert preview_of(Result({"labels": too_large}), get("scribble_cnn"), (40, 60)).data.dtype == np.int64


# ----------------------------------------------------------------------------- running


def test_a_session_runs_the_operator_and_makes_its_layers():
    coins = data.coins()
    session = RunSession(get("threshold"), {"image": coins}, {"method": "otsu"})
    outcome = session.execute()
    assert outcome.status == DONE and outcome.seconds > 0
    (layer,) = outcome.layers
    assert layer.name == "Threshold mask" and layer.kind == "mask" and layer.data.dtype == np.uint8
    plain = coins > filters.threshold_otsu(coins)
    assert (layer.data.astype(bool) == plain).mean() > 0.999


def test_only_the_newest_partial_waits_and_the_front_end_hears_once_per_empty_slot():
    def many_partials(image, ctx, **_):
        for value in range(1, 51):
            ctx.partial(np.full(image.shape, value % 2 == 0))
        return Result({"mask": np.ones(image.shape, bool)}, iterations=50)

    session = RunSession(_with_func("threshold", many_partials), {"image": np.zeros((6, 7), np.uint8)}, {}, "preview")
    calls = []
    outcome = session.execute(on_partial_ready=lambda: calls.append(1))
    assert outcome.status == DONE and outcome.preview.data.all()
    assert calls == [1]  # nobody took the first one, so the slot never emptied
    latest = session.take_partial()
    assert latest.data.all() and session.take_partial() is None  # partial 50 is even: all True


def test_cancel_from_another_thread_stops_the_run():
    started = threading.Event()

    def endless(image, ctx, **_):
        started.set()
        while True:
            ctx.check()

    session = RunSession(_with_func("threshold", endless), {"image": np.zeros((4, 4), np.uint8)}, {})
    outcomes = []
    thread = threading.Thread(target=lambda: outcomes.append(session.execute()))
    thread.start()
    assert started.wait(10)
    session.cancel()
    thread.join(10)
    assert not thread.is_alive() and outcomes[0].status == CANCELLED and session.cancelled


def test_bad_input_a_bug_and_a_faulty_result_each_end_as_an_outcome():
    image = {"image": np.zeros((4, 4), np.uint8)}

    def bug(**_):
        raise ZeroDivisionError("the operator broke")

    def wrong_size(**_):
        return Result({"mask": np.zeros((2, 2), bool)})

    bad_input = RunSession(get("random_walker"), image, {}).execute()
    assert bad_input.status == INPUT_ERROR and bad_input.is_input_error and "scribbles" in bad_input.message
    crash = RunSession(_with_func("threshold", bug), image, {}).execute()
    assert crash.status == FAILED and not crash.is_input_error
    assert "ZeroDivisionError: the operator broke" == crash.message and "Traceback" in crash.details
    assert isinstance(crash.error, ZeroDivisionError)
    faulty = RunSession(_with_func("threshold", wrong_size), image, {}).execute()
    assert faulty.status == FAILED and "mask of 2x2 for an image of 4x4" in faulty.message


def test_system_exit_ends_as_a_failure_and_ctrl_c_stops_an_inline_run():
    image = {"image": np.zeros((4, 4), np.uint8)}

    def leave(**_):
        raise SystemExit(3)

    def interrupted(**_):
        raise KeyboardInterrupt

    quit_ = RunSession(_with_func("threshold", leave), image, {}).execute()
    assert quit_.status == FAILED and quit_.message == "SystemExit: 3" and isinstance(quit_.error, SystemExit)
    # On the main thread (the command line) Ctrl+C still stops the program...
    with pytest.raises(KeyboardInterrupt):
        RunSession(_with_func("threshold", interrupted), image, {}).execute()
    # ...while in a worker thread, where no Ctrl+C arrives, it is an operator's bug like any other.
    outcomes = []
    in_worker = RunSession(_with_func("threshold", interrupted), image, {})
    thread = threading.Thread(target=lambda: outcomes.append(in_worker.execute()))
    thread.start()
    thread.join(10)
    assert outcomes[0].status == FAILED and outcomes[0].message.startswith("KeyboardInterrupt")


def test_a_pixel_output_of_objects_or_complex_numbers_is_refused():
    image = {"image": np.zeros((4, 4), np.uint8)}
    for values in (np.full((4, 4), "yes", object), np.zeros((4, 4), np.complex64)):
        with pytest.raises(FaultyResult, match=f"mask of {values.dtype} values"):
            check_result(get("threshold"), Result({"mask": values}), image)


def test_an_unusable_parameter_is_refused_before_the_run():
    with pytest.raises(InputError, match="no parameter"):
        RunSession(get("threshold"), {"image": np.zeros((4, 4), np.uint8)}, {"no_such": 1})
