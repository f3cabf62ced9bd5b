"""Inpainting and object removal on real photos (scikit-image's), plus the contract details.

Quality is PSNR inside a hole punched into textured background, against the untouched
photo. A note on what PSNR can show: on random texture (grass, gravel) the best guess in
the squared-error sense is a blur, so a sharp, plausible patch fill scores about as well as
a diffusion fill or worse; the exemplar method's advantage in PSNR shows where the
texture is regular enough to be predicted (bricks, wood grain), which is what the
comparison against Telea uses. Texture is checked with a detail ratio (gradient energy of
the fill over that of the real content), seams with the jump across the hole's edge.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
from skimage import data
from skimage.metrics import peak_signal_noise_ratio

from maskwork.operators import Cancelled, InputError, RunContext, get
from maskwork.operators.refine.morphology import dilate

METHODS = ("exemplar", "telea", "navier_stokes", "biharmonic")
INPAINT = get("inpaint")
REMOVE = get("remove_object")


def _crop(image: np.ndarray, top: int, left: int, size: int = 200) -> np.ndarray:
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def _square(shape, top: int, left: int, side: int) -> np.ndarray:
    mask = np.zeros(shape[:2], bool)
    mask[top : top + side, left : left + side] = True
    return mask


def _hole_psnr(filled: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    return peak_signal_noise_ratio(truth[hole].astype(np.float64), filled[hole].astype(np.float64), data_range=255)


def _mean_fill(image: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The naive fill: the mean colour of a 4-pixel ring around the hole."""
    ring = dilate(hole, 4) & ~hole
    out = image.copy()
    out[hole] = np.round(image[ring].mean(axis=0)).astype(image.dtype)
    return out


# Textured background, no object under the hole: wood of the table beside the cup, the
# brick wall, and the fur between the cat's eyes.
SCENES = {
    "coffee_table": lambda: _crop(data.coffee(), 151, 380),
    "brick": lambda: _crop(data.brick(), 147, 159),
    "chelsea_fur": lambda: _crop(data.chelsea(), 47, 128),
}


@pytest.fixture(scope="module")
def filled_scenes() -> dict:
    """(scene, method) -> (photo, hole, filled), each filled once for the module."""
    results = {}
    for scene, load in SCENES.items():
        photo = load()
        hole = _square(photo.shape, 80, 80, 40)
        for method in METHODS:
            filled = INPAINT.run({"image": photo, "mask": hole}, {"method": method})["image"]
            results[scene, method] = (photo, hole, filled)
    return results


@pytest.mark.parametrize("scene", sorted(SCENES))
@pytest.mark.parametrize("method", METHODS)
def test_every_method_beats_the_mean_colour_on_textured_background(filled_scenes, scene, method):
    photo, hole, filled = filled_scenes[scene, method]
    naive = _hole_psnr(_mean_fill(photo, hole), photo, hole)
    assert _hole_psnr(filled, photo, hole) > naive + 0.5
    # Nothing outside the hole changes, to the bit.
    np.testing.assert_array_equal(filled[~hole], photo[~hole])
    assert filled.dtype == photo.dtype and filled.shape == photo.shape


@pytest.mark.parametrize("top, left", [(147, 159), (10, 44)])
def test_exemplar_beats_telea_on_a_brick_wall(top, left):
    photo = _crop(data.brick(), top, left)
    hole = _square(photo.shape, 80, 80, 40)
    exemplar = INPAINT.run({"image": photo, "mask": hole}, {"method": "exemplar"})["image"]
    telea = INPAINT.run({"image": photo, "mask": hole}, {"method": "telea"})["image"]
    # Diffusion smears the mortar lines into grey; copied patches continue the bond
    # (measured: 25.9 and 24.7 dB against Telea's 23.0 and 13.9).
    assert _hole_psnr(exemplar, photo, hole) > _hole_psnr(telea, photo, hole) + 2.5


def _detail(filled: np.ndarray, truth: np.ndarray, hole: np.ndarray) -> float:
    """Gradient energy of the fill inside the hole over that of the real content there."""
    inner = ~dilate(~hole, 2)

    def energy(image):
        rows, cols = np.gradient(image.astype(np.float64), axis=(0, 1))
        return np.hypot(rows, cols)[inner].mean()

    return energy(filled) / energy(truth)


@pytest.mark.parametrize("name", ["grass", "gravel"])
def test_exemplar_keeps_the_texture_that_diffusion_and_averaging_smooth_away(name):
    """A 64 px hole in random texture: the default exemplar fill is as detailed as the
    real thing; diffusion is a smudge and averaged patches (sharp=False) are milky. (PSNR
    cannot show this: on random texture the blur is the closer guess pixel by pixel.)"""
    photo = _crop(getattr(data, name)(), 100, 100)
    hole = _square(photo.shape, 68, 68, 64)
    detail = {
        method: _detail(INPAINT.run({"image": photo, "mask": hole}, {"method": method})["image"], photo, hole)
        for method in ("telea", "navier_stokes")
    }
    sharp = INPAINT.run({"image": photo, "mask": hole}, {})["image"]
    averaged = INPAINT.run({"image": photo, "mask": hole}, {"sharp": False})["image"]
    np.testing.assert_array_equal(sharp[~hole], photo[~hole])
    assert 0.5 < _detail(sharp, photo, hole) < 1.3
    assert _detail(sharp, photo, hole) > 2 * max(detail.values())
    assert _detail(sharp, photo, hole) > 1.3 * _detail(averaged, photo, hole)


def test_exemplar_beats_telea_on_the_cats_fur():
    """A 96 px hole in the fur above the cat's eye (where the inpainting benchmark puts
    one): copied fur is closer to the real one than diffusion's smudge, and still fur."""
    photo = data.chelsea()
    hole = _square(photo.shape, 28, 28, 96)
    exemplar = INPAINT.run({"image": photo, "mask": hole}, {})["image"]
    telea = INPAINT.run({"image": photo, "mask": hole}, {"method": "telea"})["image"]
    assert _hole_psnr(exemplar, photo, hole) > _hole_psnr(telea, photo, hole) + 2.0
    assert _detail(exemplar, photo, hole) > 2 * _detail(telea, photo, hole)


def _brick_wall(rows: int = 160, cols: int = 160) -> np.ndarray:
    """A generated running-bond wall (RGB): bricks 30 x 12 px between 2 px of mortar, every
    other course shifted by half a brick, a little noise on everything (seeded)."""
    y, x = np.mgrid[:rows, :cols]
    shift = (y // 14) % 2 * 16
    mortar = (y % 14 < 2) | ((x + shift) % 32 < 2)
    wall = np.where(mortar[..., None], np.array([205, 198, 186.0]), np.array([150, 62, 44.0]))
    wall += np.random.default_rng(0).normal(0.0, 6.0, wall.shape)
    return np.clip(np.rint(wall), 0, 255).astype(np.uint8)


def test_exemplar_continues_a_periodic_texture():
    wall = _brick_wall()
    hole = _square(wall.shape, 56, 60, 44)
    filled = INPAINT.run({"image": wall, "mask": hole}, {})["image"]
    telea = INPAINT.run({"image": wall, "mask": hole}, {"method": "telea"})["image"]
    np.testing.assert_array_equal(filled[~hole], wall[~hole])

    def error(image):
        return np.abs(image[hole].astype(np.float64) - wall[hole]).mean()

    # The bond continues with its texture, where diffusion smears it into a blur. (Not
    # to the pixel: a joint or two come out displaced, about half the fill's error.)
    assert error(filled) < 0.6 * error(telea)
    assert 0.7 < _detail(filled, wall, hole) < 1.25


def test_the_walls_repeats_are_found_and_keep_a_large_fill_in_step():
    """The translations under which the generated wall repeats (its bond: a course down
    and half a brick across, one brick across, two courses down) are found around a 96 px
    hole, and the fill built on them (copies at them in the first guess and the search,
    finer levels started from the copies) is the real bond, joints in place, but for the
    noise: without them its error was 0.54 of Telea's (displaced and missing joints)."""
    from maskwork.operators.inpaint.inpaint import _dominant_offsets

    wall = _brick_wall(240, 240)
    hole = _square(wall.shape, 70, 70, 96)
    found = {tuple(abs(int(v)) for v in offset) for offset in _dominant_offsets(wall.astype(np.float32), hole, 9)}
    assert {(0, 32), (28, 0), (14, 16)} <= found
    filled = INPAINT.run({"image": wall, "mask": hole}, {})["image"]
    telea = INPAINT.run({"image": wall, "mask": hole}, {"method": "telea"})["image"]

    def error(image):
        return np.abs(image[hole].astype(np.float64) - wall[hole]).mean()

    assert error(filled) < 0.3 * error(telea)


def _blob_hole(shape, seed: int) -> np.ndarray:
    """An irregular hole: a smoothed random field thresholded (seeded), with holes and
    thin strips of known picture inside it."""
    import cv2

    field = cv2.GaussianBlur(np.random.default_rng(seed).random(shape).astype(np.float32), (0, 0), 6)
    return field > np.quantile(field, 0.55)


@pytest.mark.parametrize("side", [30, 150])  # solved at once; by multigrid cycles
def test_the_membrane_fill_keeps_a_linear_ramp_and_matches_the_exact_solve(side):
    """Laplace's equation keeps a linear ramp as it is, whatever the hole's shape; on a
    textured photo the multigrid solution is the sparse solve's to within 2 of 255."""
    from maskwork.operators.inpaint.inpaint import _membrane_fill, _solve_membrane

    rows = cols = side + 20
    y, x = np.mgrid[:rows, :cols].astype(np.float32)
    ramp = np.dstack([2.0 * x + y, 100.0 - y, 0.5 * x]).astype(np.float32)
    hole = np.zeros((rows, cols), bool)
    hole[10 : 10 + side, 10 : 10 + side] = _blob_hole((side, side), seed=side)
    damaged = ramp.copy()
    damaged[hole] = 0.0
    np.testing.assert_allclose(_membrane_fill(damaged, hole)[hole], ramp[hole], atol=0.5)  # of up to 500

    photo = _crop(data.chelsea(), 100, 100, rows).astype(np.float32)
    exact = photo.copy()
    exact[hole] = _solve_membrane(photo, hole, np.zeros_like(photo))
    filled = _membrane_fill(photo, hole)
    assert np.abs(filled - exact)[hole].max() < 2.0
    np.testing.assert_array_equal(filled[~hole], photo[~hole])


def test_the_membrane_fill_of_a_hole_on_the_edge_mirrors_there():
    """A hole reaching the array's edge: no flux through the edge, as the exact solve."""
    from maskwork.operators.inpaint.inpaint import _membrane_fill, _solve_membrane

    photo = _crop(data.coffee(), 50, 50, 160).astype(np.float32)
    hole = np.zeros(photo.shape[:2], bool)
    hole[:90, 40:140] = True
    exact = photo.copy()
    exact[hole] = _solve_membrane(photo, hole, np.zeros_like(photo))
    filled = _membrane_fill(photo, hole)
    assert np.isfinite(filled).all()
    assert np.abs(filled - exact)[hole].max() < 2.0


def test_the_membrane_step_moves_random_copies_towards_the_edge_and_keeps_the_grain(monkeypatch):
    """Random texture: the copies' local mean is one draw's, the membrane's the closer
    guess; over five photos' 64 px holes the fill scores higher on average (on grass
    about the same) and each keeps (nearly) all its detail. A brick wall, where the
    sources agree, is left as the copies made it."""
    from maskwork.operators.inpaint.inpaint import _Level

    photos = [_crop(getattr(data, name)(), 100, 100) for name in ("grass", "gravel", "chelsea", "coffee", "astronaut")]
    hole = _square(photos[0].shape, 68, 68, 64)
    wall = _brick_wall()
    wall_hole = _square(wall.shape, 60, 60, 40)
    blended = [INPAINT.run({"image": photo, "mask": hole}, {})["image"] for photo in photos]
    blended_wall = INPAINT.run({"image": wall, "mask": wall_hole}, {})["image"]
    monkeypatch.setattr(_Level, "blend_membrane_low_band", lambda self, sigma: None)
    copied = [INPAINT.run({"image": photo, "mask": hole}, {})["image"] for photo in photos]
    copied_wall = INPAINT.run({"image": wall, "mask": wall_hole}, {})["image"]
    gains = [_hole_psnr(b, photo, hole) - _hole_psnr(c, photo, hole) for b, c, photo in zip(blended, copied, photos)]
    # Measured: grass +0.00, gravel +0.09, chelsea +0.81, coffee +0.24, astronaut +0.29 dB.
    assert np.mean(gains) > 0.1, [f"{gain:+.2f}" for gain in gains]
    for b, c, photo in zip(blended, copied, photos):
        assert _detail(b, photo, hole) > 0.9 * _detail(c, photo, hole)
    change = np.abs(blended_wall.astype(float) - copied_wall)[wall_hole].mean()
    assert change < 1.0, f"the wall's fill moved by {change:.2f} grey levels on average"


def test_the_sources_disagreement_does_not_grow_with_brightness(monkeypatch):
    """The same striped texture 1,000 or 60,000 grey levels up (16-bit): the sources'
    spread that decides the membrane step is about the same (float32 squares of the
    values themselves once made it 300 times larger at 60,000)."""
    from maskwork.operators.inpaint.inpaint import _Level

    spreads = []
    blend = _Level.blend_membrane_low_band

    def recording(self, sigma):
        spreads.append(float(self.disagreement[self.hole].mean()))
        blend(self, sigma)

    monkeypatch.setattr(_Level, "blend_membrane_low_band", recording)
    rows, cols = np.mgrid[:120, :160]
    texture = 6.0 * ((cols // 4) % 2) + np.random.default_rng(0).normal(0.0, 1.0, (120, 160))
    hole = _square(texture.shape, 40, 60, 40)
    for offset in (1000, 60000):
        image = (texture + offset).astype(np.uint16)
        INPAINT.run({"image": np.dstack([image] * 3), "mask": hole}, {})
    low, high = spreads
    assert 0.5 < high / low < 2.0, f"{low:.4g} at 1,000, {high:.4g} at 60,000"


def test_a_hole_on_the_image_border_fills_where_no_repeat_fits():
    """A hole along the bottom of the brick photo: for its last rows every dominant offset
    points out of the picture or into the hole, so the first guess takes the medoid of the
    best sources there (once an index error)."""
    photo = np.ascontiguousarray(data.brick()[:200, :200])
    hole = np.zeros(photo.shape, bool)
    hole[137:, 11:73] = True
    filled = INPAINT.run({"image": photo, "mask": hole}, {})["image"]
    np.testing.assert_array_equal(filled[~hole], photo[~hole])
    assert _hole_psnr(filled, photo, hole) > _hole_psnr(_mean_fill(photo, hole), photo, hole)


def _night_sky(seed: int) -> np.ndarray:
    """A generated dusk sky (a vertical blue gradient, a little noise) with a dozen
    one-pixel stars, beside a bright launch tower with dark cross bars every 12 rows."""
    rng = np.random.default_rng(seed)
    rows, cols = 200, 240
    y = np.linspace(0, 1, rows)[:, None, None]
    sky = (1 - y) * np.array([40, 55, 100.0]) + y * np.array([70, 80, 130.0]) + np.zeros((rows, cols, 3))
    sky[:, 30:60] = np.array([220, 210, 180.0])
    sky[(np.arange(rows) % 12) < 2, 30:60] = np.array([90, 80, 70.0])
    sky[rng.integers(0, rows, 12), rng.integers(80, cols, 12)] = np.array([230, 230, 240.0])
    sky += rng.normal(0, 2.0, sky.shape)
    return np.clip(np.rint(sky), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("seed, top, left", [(2, 60, 90), (4, 60, 90), (6, 20, 150), (7, 20, 150)])
def test_a_plain_sky_fill_has_no_copied_specks(seed, top, left):
    """A 48 px hole in the plain sky, near the tower or not: copies of sky brought along a
    star or a fleck of the tower beside their source (75-156 levels brighter than
    diffusion's fill in these four cases), specks diffusion never makes; the fill's
    departures from its local median are now held to those of the sky around it."""
    sky = _night_sky(seed)
    hole = _square(sky.shape, top, left, 48)
    filled = INPAINT.run({"image": sky, "mask": hole}, {})["image"]
    telea = INPAINT.run({"image": sky, "mask": hole}, {"method": "telea"})["image"]
    brighter = filled[hole].astype(np.float64).mean(axis=1) - telea[hole].astype(np.float64).mean(axis=1)
    assert brighter.max() < 30


def test_a_piece_of_the_tower_copied_into_the_sky_is_removed():
    """scikit-image's rocket, a 48 px hole in the sky right of the launch tower: the copy
    brought a fleck of the tower along, about 8 px wide (100 levels brighter than
    diffusion's fill; the 5 x 5 median follows it, so the speck clip kept it)."""
    from skimage import data

    rocket = data.rocket()
    hole = _square(rocket.shape, 244, 348, 48)
    filled = INPAINT.run({"image": rocket, "mask": hole}, {})["image"]
    telea = INPAINT.run({"image": rocket, "mask": hole}, {"method": "telea"})["image"]
    brighter = filled[hole].astype(np.float64).mean(axis=1) - telea[hole].astype(np.float64).mean(axis=1)
    assert np.abs(brighter).max() < 20
    assert _hole_psnr(filled, rocket, hole) > 38  # 29.5 dB with the fleck; Telea 41


def _edge_jump(image: np.ndarray, hole: np.ndarray) -> float:
    """Mean absolute difference between hole pixels on the edge and their known 4-neighbours."""
    image = image.astype(np.float64)
    jumps = []
    for axis in (0, 1):
        for step in (1, -1):
            neighbour = np.roll(image, step, axis=axis)
            known_neighbour = np.roll(~hole, step, axis=axis)
            pairs = hole & known_neighbour
            jumps.append(np.abs(image - neighbour)[pairs])
    return float(np.concatenate(jumps).mean())


def test_exemplar_leaves_no_seam_at_the_hole_edge():
    """Grass under a strong left-to-right brightening: every patch copied from the left
    is too dark for the right edge and the other way round, so pasted pixels would show
    a step at the edge. The fill's jump across the edge is what the photo has there, and
    the texture inside is kept."""
    grass = _crop(data.grass(), 100, 100, 160).astype(np.float64)
    ramp = np.linspace(-70, 70, 160)[None, :]
    photo = np.clip(0.6 * grass + 50 + ramp, 0, 255).astype(np.uint8)
    hole = _square(photo.shape, 48, 48, 64)
    filled = INPAINT.run({"image": photo, "mask": hole}, {})["image"]
    assert _edge_jump(filled, hole) < 1.25 * _edge_jump(photo, hole)
    assert _detail(filled, photo, hole) > 0.6
    # The brightening continues through the hole (column means follow the photo's).
    columns = np.abs(filled[48:112, 48:112].mean(axis=0) - photo[48:112, 48:112].mean(axis=0))
    assert columns.mean() < 12


def test_the_first_guess_is_made_of_the_pictures_own_colours():
    """The onion peel on the coarsest level gives every pixel the medoid of what its five
    best-matching sources hold there: a colour the picture has. Their mean was a mixture
    (mid-greys in a black-and-white texture) that the finer levels matched to flat
    sources: a piece of sky copied into a building's wall. (That the medoid is no outlier,
    as the single best source can be, the night-sky tests show: no copied star.)"""
    from maskwork.operators.context import null_context
    from maskwork.operators.inpaint.inpaint import _onion_fill

    blocks = np.random.default_rng(0).random((20, 20)) < 0.5
    texture = (255.0 * np.kron(blocks, np.ones((3, 3)))).astype(np.float32)[..., None]
    hole = _square(texture.shape, 20, 20, 20)
    damaged = np.where(hole[..., None], 0.0, texture).astype(np.float32)
    guess = _onion_fill(damaged, hole, 4, np.random.default_rng(0), null_context(), np.zeros((0, 2), np.float32))
    assert np.isin(guess[hole], (0.0, 255.0)).all()


def test_the_fill_of_a_large_hole_leaves_no_step_at_its_edge():
    """The issue's cat (chelsea at twice its size, a 330 x 300 px hole over the cheek)
    and 120 px holes in four photos: the low-band steps after the seam removal once left
    a band along the edge in the averaged vote's colour, a jump across the edge 1.4 - 1.8
    times the photo's own there (1.56 on average); now 0.7 - 1.0 (0.87), and not much
    below that either (a soft rim along the edge would show too)."""
    cat = np.ascontiguousarray(data.chelsea().repeat(2, axis=0).repeat(2, axis=1))
    cheek = np.zeros(cat.shape[:2], bool)
    cheek[260:560, 20:350] = True
    cases = [(cat, cheek)]
    for name in ("chelsea", "coffee", "astronaut", "gravel"):
        photo = _crop(getattr(data, name)(), 100, 100)
        cases.append((photo, _square(photo.shape, 40, 40, 120)))
    ratios = []
    for photo, hole in cases:
        filled = INPAINT.run({"image": photo, "mask": hole}, {})["image"]
        ratios.append(_edge_jump(filled, hole) / _edge_jump(photo, hole))
    # Measured: 1.03, 0.80, 0.73, 0.92, 0.86 (before: 1.53, 1.47, 1.44, 1.84, 1.52).
    assert np.mean(ratios) < 1.2, np.round(ratios, 2)
    assert max(ratios) < 1.3, np.round(ratios, 2)
    assert min(ratios) > 0.6, np.round(ratios, 2)


def test_remove_object_restores_the_background():
    """A dark disc pasted on a brick wall, removed from its (slightly too tight) mask."""
    wall = np.repeat(_crop(data.brick(), 147, 159)[..., None], 3, axis=2)
    rows, cols = np.ogrid[:200, :200]
    disc = (rows - 100) ** 2 + (cols - 96) ** 2 <= 18**2
    with_object = wall.copy()
    with_object[disc] = (30, 40, 160)
    soft_edge = dilate(disc, 2) & ~disc  # a halo the person's mask missed
    with_object[soft_edge] = (wall[soft_edge] // 2 + np.array([15, 20, 80])).astype(np.uint8)

    mask = disc.astype(np.uint8) * 3  # a labels layer: any nonzero label is the object
    result = REMOVE.run({"image": with_object, "mask": mask}, {"grow": 4})
    removed = result["image"]
    grown = dilate(disc, 4)
    np.testing.assert_array_equal(removed[~grown], with_object[~grown])
    assert _hole_psnr(removed, wall, grown) > _hole_psnr(with_object, wall, grown) + 10
    # Without growing, the halo stays.
    kept = REMOVE.run({"image": with_object, "mask": mask}, {"grow": 0})["image"]
    np.testing.assert_array_equal(kept[soft_edge], with_object[soft_edge])


def test_remove_object_is_inpaint_of_the_grown_mask():
    photo = _crop(data.coffee(), 151, 380, 120)
    mask = _square(photo.shape, 50, 50, 16)
    removed = REMOVE.run({"image": photo, "mask": mask}, {"grow": 6, "method": "telea"})["image"]
    inpainted = INPAINT.run({"image": photo, "mask": dilate(mask, 6)}, {"method": "telea"})["image"]
    np.testing.assert_array_equal(removed, inpainted)


def test_diffusion_methods_on_the_crop_equal_the_library_calls_on_the_whole_image():
    """Working on the hole's box plus a margin changes nothing, to the bit."""
    import cv2
    from skimage.restoration import inpaint_biharmonic

    photo = np.ascontiguousarray(data.astronaut()[::2, ::2])
    hole = _square(photo.shape, 100, 50, 20) | _square(photo.shape, 150, 200, 8)
    for method, flag in (("telea", cv2.INPAINT_TELEA), ("navier_stokes", cv2.INPAINT_NS)):
        for radius in (3, 9):
            ours = INPAINT.run({"image": photo, "mask": hole}, {"method": method, "radius": radius})["image"]
            np.testing.assert_array_equal(ours, cv2.inpaint(photo, hole.astype(np.uint8), radius, flag))
    # scikit-image clips its fill to the range of the known pixels it is given: ours gets
    # the hole's box plus 8 px, so the clip is that box's range, otherwise the same.
    hole = _square(photo.shape, 100, 50, 20)
    ours = INPAINT.run({"image": photo, "mask": hole}, {"method": "biharmonic"})["image"]
    theirs = inpaint_biharmonic(photo / 255.0, hole, channel_axis=-1, split_into_regions=True) * 255
    box = (slice(92, 128), slice(42, 78))
    known = photo[box][~hole[box]]
    theirs = np.clip(theirs[hole], known.min(axis=0), known.max(axis=0))
    assert np.abs(ours[hole].astype(np.float64) - theirs).max() <= 0.5 + 1e-6
    np.testing.assert_array_equal(ours[~hole], photo[~hole])


# ------------------------------------------------------------------ image kinds and dtypes


def _small_rgb() -> np.ndarray:
    return _crop(data.coffee(), 151, 380, 72)


def _kinds() -> dict:
    rgb = _small_rgb()
    gray = np.ascontiguousarray(rgb[..., 1])
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :36] = 128
    return {
        "gray_uint8": gray,
        "gray_with_channel_axis": gray[..., None],
        "rgb_uint8": rgb,
        "rgba_uint8": np.dstack([rgb, alpha]),
        "rgb_uint16": rgb.astype(np.uint16) * 257,
        "gray_uint16": gray.astype(np.uint16) * 257,
        "rgb_float32": rgb.astype(np.float32) / 255,
        "gray_float64": gray.astype(np.float64) / 255 * 1000 - 300,  # outside [0, 1]
    }


@pytest.mark.parametrize("kind", sorted(_kinds()))
@pytest.mark.parametrize("method", METHODS)
def test_image_kinds_keep_shape_dtype_and_the_outside(kind, method):
    image = _kinds()[kind]
    original = image.copy()
    hole = _square(image.shape, 28, 30, 14)
    filled = INPAINT.run({"image": image, "mask": hole}, {"method": method})["image"]
    np.testing.assert_array_equal(image, original)  # input untouched
    assert filled.shape == image.shape and filled.dtype == image.dtype
    np.testing.assert_array_equal(filled[~hole], image[~hole])
    values = filled[hole].astype(np.float64)
    assert np.all(np.isfinite(values))
    # The fill stays near the range of the picture and follows what was there.
    scale = float(image.max() - image.min())
    assert values.min() >= image.min() - 0.1 * scale and values.max() <= image.max() + 0.1 * scale
    naive = np.abs(image[hole].astype(np.float64) - image[~hole].astype(np.float64).mean(axis=0)).mean()
    assert np.abs(values - image[hole].astype(np.float64)).mean() < naive + 0.02 * scale


def test_alpha_is_filled_like_a_channel():
    image = _kinds()["rgba_uint8"]
    hole = _square(image.shape, 20, 30, 12)  # straddles the alpha edge at column 36
    for method in METHODS:
        alpha = INPAINT.run({"image": image, "mask": hole}, {"method": method})["image"][..., 3]
        assert alpha[hole].min() >= 120, method  # diffusion may undershoot a little
        assert alpha[20:32, 30:32].mean() < alpha[20:32, 40:42].mean(), method


def test_non_finite_pixels_outside_the_mask_stay_and_are_never_copied():
    image = _small_rgb().astype(np.float32)
    image[5:8, 5:8] = np.nan
    image[60, 60] = np.inf
    hole = _square(image.shape, 28, 30, 14)
    image[hole] = np.nan  # the hole's own contents do not matter
    for method in METHODS:
        filled = INPAINT.run({"image": image, "mask": hole}, {"method": method})["image"]
        assert np.all(np.isfinite(filled[hole])), method
        assert np.isnan(filled[5:8, 5:8]).all() and np.isinf(filled[60, 60]).all(), method


def test_separate_holes_are_filled_region_by_region():
    photo = _crop(data.coffee(), 100, 300, 300)
    hole = _square(photo.shape, 20, 20, 16) | _square(photo.shape, 250, 240, 20)
    result = INPAINT.run({"image": photo, "mask": hole}, {"method": "exemplar"})
    assert result.scores["regions"] == 2
    np.testing.assert_array_equal(result["image"][~hole], photo[~hole])
    assert _hole_psnr(result["image"], photo, hole) > _hole_psnr(_mean_fill(photo, hole), photo, hole)
    # The reported bounds cover both holes.
    rows, cols = result.bounds
    assert rows.start <= 20 and rows.stop >= 270 and cols.start <= 20 and cols.stop >= 260


def test_exemplar_is_deterministic_and_draft_is_a_quicker_fill():
    photo = SCENES["coffee_table"]()
    hole = _square(photo.shape, 60, 60, 80)
    first = INPAINT.run({"image": photo, "mask": hole}, {})
    second = INPAINT.run({"image": photo, "mask": hole}, {})
    np.testing.assert_array_equal(first["image"], second["image"])
    assert first.scores["levels"] >= 2
    draft = INPAINT.run({"image": photo, "mask": hole}, {"draft": 1})
    assert draft.scores["levels"] == first.scores["levels"] - 1
    np.testing.assert_array_equal(draft["image"][~hole], photo[~hole])
    assert _hole_psnr(draft["image"], photo, hole) > _hole_psnr(_mean_fill(photo, hole), photo, hole)


# ------------------------------------------------------------------ progress, previews, cancel


def test_exemplar_reports_progress_and_a_coarse_preview_first():
    photo = SCENES["coffee_table"]()
    hole = _square(photo.shape, 60, 60, 80)
    progress, partials = [], []
    ctx = RunContext(on_progress=lambda f, m: progress.append((f, m)), on_partial=partials.append)
    result = INPAINT.run({"image": photo, "mask": hole}, {}, ctx)
    assert len(partials) >= 1
    for partial in partials:
        preview = partial["image"]
        assert preview.shape == photo.shape and preview.dtype == photo.dtype
        np.testing.assert_array_equal(preview[~hole], photo[~hole])
        assert partial.bounds == result.bounds
    # The first preview (the coarsest level, upsampled) already follows the final fill.
    final = result["image"][hole].astype(np.float64)
    first = partials[0]["image"][hole].astype(np.float64)
    naive = _mean_fill(photo, hole)[hole].astype(np.float64)
    assert np.abs(first - final).mean() < np.abs(naive - final).mean()
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("exemplar" in message for _, message in progress)


def test_the_first_preview_of_a_large_hole_comes_within_a_second():
    """The issue's case: a 330 x 300 px hole in the cat's fur (chelsea at twice its size).
    The first preview is the coarsest level upsampled; 2 s allows for a loaded machine."""
    import time

    photo = np.ascontiguousarray(data.chelsea().repeat(2, axis=0).repeat(2, axis=1))
    hole = np.zeros(photo.shape[:2], bool)
    hole[260:560, 20:350] = True  # 300 rows x 330 columns
    arrivals = []
    start = time.perf_counter()
    ctx = RunContext(on_partial=lambda partial: arrivals.append(time.perf_counter() - start))
    filled = INPAINT.run({"image": photo, "mask": hole}, {}, ctx)["image"]
    assert arrivals and arrivals[0] < 2.0
    np.testing.assert_array_equal(filled[~hole], photo[~hole])


def test_cancelling_during_the_fill_raises():
    photo = SCENES["coffee_table"]()
    hole = _square(photo.shape, 60, 60, 80)
    cancel = threading.Event()
    seen = []

    def cancel_on_first_partial(result):
        seen.append(result)
        cancel.set()  # as the window's Cancel button does, from another thread

    ctx = RunContext(on_partial=cancel_on_first_partial, cancel_event=cancel)
    with pytest.raises(Cancelled):
        INPAINT.run({"image": photo, "mask": hole}, {}, ctx)
    assert len(seen) == 1


@pytest.mark.parametrize("op", [INPAINT, REMOVE], ids=lambda spec: spec.id)
@pytest.mark.parametrize("method", METHODS)
def test_a_cancelled_context_stops_every_method(op, method):
    ctx = RunContext()
    ctx.cancel()
    photo = _small_rgb()
    with pytest.raises(Cancelled):
        op.run({"image": photo, "mask": _square(photo.shape, 20, 20, 10)}, {"method": method}, ctx)


# ------------------------------------------------------------------ bad input


def test_empty_mask_is_an_input_error():
    photo = _small_rgb()
    for op in (INPAINT, REMOVE):
        with pytest.raises(InputError, match="empty"):
            op.run({"image": photo, "mask": np.zeros(photo.shape[:2], np.uint8)}, {})


def test_mask_of_the_wrong_size_is_an_input_error():
    photo = _small_rgb()
    with pytest.raises(InputError, match="72x72"):
        INPAINT.run({"image": photo, "mask": np.ones((40, 72), bool)}, {})
    with pytest.raises(InputError, match="single-channel"):
        INPAINT.run({"image": photo, "mask": np.dstack([np.ones((72, 72)), np.zeros((72, 72)), np.ones((72, 72))])}, {})


def test_missing_mask_and_full_mask_are_input_errors():
    photo = _small_rgb()
    with pytest.raises(InputError, match="needs mask"):
        INPAINT.run({"image": photo}, {})
    with pytest.raises(InputError, match="whole image"):
        INPAINT.run({"image": photo, "mask": np.ones(photo.shape[:2], bool)}, {"method": "telea"})


def test_too_little_picture_for_the_patches_is_an_input_error():
    photo = _small_rgb()[:20, :20]
    hole = np.ones((20, 20), bool)
    hole[0, 0] = False
    with pytest.raises(InputError, match="patch"):
        INPAINT.run({"image": photo, "mask": hole}, {"method": "exemplar"})
    # The diffusion methods still fill it from the one known pixel.
    filled = INPAINT.run({"image": photo, "mask": hole}, {"method": "telea"})["image"]
    assert filled[0, 0].tolist() == photo[0, 0].tolist()


def test_even_patch_sizes_are_rounded_up_and_bad_methods_rejected():
    photo = _small_rgb()
    hole = _square(photo.shape, 28, 30, 14)
    assert INPAINT.run({"image": photo, "mask": hole}, {"patch_size": 8})["image"].shape == photo.shape
    with pytest.raises(InputError, match="exemplar"):
        INPAINT.run({"image": photo, "mask": hole}, {"method": "fast"})
