"""Each MNIST-C corruption against its definition (Mu & Gilmer, 2019 recipe).

References are independent of the implementation where one exists
(skimage/scipy transforms and filters, exact Poisson and Bernoulli moments);
otherwise the test checks an invariant the recipe implies.
"""

import pathlib

import numpy as np
import pytest
from scipy import ndimage, stats
from skimage import filters, transform

from keras_odetoode.data import corruptions as C

DIGITS_FILE = pathlib.Path(__file__).parent / "data" / "mnist-600.npz"
RANDOM = {
    "shot_noise",
    "impulse_noise",
    "glass_blur",
    "motion_blur",
    "shear",
    "rotate",
    "translate",
    "fog",
    "spatter",
    "dotted_line",
    "zigzag",
}
DETERMINISTIC = set(C.CORRUPTION_NAMES) - RANDOM
# A z-score this large happens by chance with probability ~6e-7 (two-sided).
Z = 5.0


@pytest.fixture(scope="module")
def digits():
    with np.load(DIGITS_FILE) as data:
        return data["images"][:200]


def constant(value, n=200):
    return np.full((n, 28, 28), value, np.uint8)


def recipe_warp(images, matrix):
    """skimage `warp` with a 2x2 inverse map (col, row) fixed at the centre 13.5."""
    affine = np.eye(3)
    affine[:2, :2] = matrix
    affine[:2, 2] = 13.5 * (1.0 - matrix.sum(axis=1))
    tform = transform.AffineTransform(matrix=affine)
    out = [transform.warp(image / 255.0, inverse_map=tform, order=1) for image in images]
    return np.rint(np.clip(out, 0, 1) * 255)


def rc_affine(images, matrix):
    """scipy.ndimage reference of the same map, in (row, col) coordinates."""
    swap = np.array([[0, 1], [1, 0]])
    m = swap @ matrix @ swap
    offset = 13.5 * (1.0 - m.sum(axis=1))
    out = [
        ndimage.affine_transform(image / 255.0, m, offset=offset, order=1, mode="grid-constant", cval=0.0)
        for image in images
    ]
    return np.rint(np.clip(out, 0, 1) * 255)


# ------------------------------------------------------------ the registry


def test_registry_matches_tfds_configs():
    import tensorflow_datasets as tfds

    configs = tfds.builder_cls("mnist_corrupted").BUILDER_CONFIGS
    assert C.CORRUPTION_NAMES == tuple(config.name for config in configs)
    assert len(C.CORRUPTIONS) == 16


@pytest.mark.parametrize("name", C.CORRUPTION_NAMES)
def test_contract(name, digits):
    before = digits.copy()
    out = C.corrupt(digits, name, seed=3)
    assert out.dtype == np.uint8 and out.shape == digits.shape
    np.testing.assert_array_equal(digits, before)  # input left alone
    np.testing.assert_array_equal(out, C.CORRUPTIONS[name](digits, seed=3))
    other = C.CORRUPTIONS[name](digits, seed=4)
    if name in RANDOM:
        assert not np.array_equal(out, other)
    else:
        np.testing.assert_array_equal(out, other)
    if name != "identity":
        assert not np.array_equal(out, digits)


@pytest.mark.parametrize("name", sorted(RANDOM))
def test_generator_seed_is_accepted(name, digits):
    a = C.CORRUPTIONS[name](digits[:20], seed=np.random.default_rng(7))
    b = C.CORRUPTIONS[name](digits[:20], seed=np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_corruptions_act_per_image(name, digits):
    whole = C.CORRUPTIONS[name](digits[:10])
    for i in range(10):
        np.testing.assert_array_equal(whole[i], C.CORRUPTIONS[name](digits[i : i + 1])[0])


def test_empty_batch():
    for name, corruption in C.CORRUPTIONS.items():
        assert corruption(np.zeros((0, 28, 28), np.uint8)).shape == (0, 28, 28), name


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="corruption='snow'") as error:
        C.corrupt(constant(0, 1), "snow")
    for name in C.CORRUPTION_NAMES:
        assert name in str(error.value)


@pytest.mark.parametrize(
    "images, what",
    [
        (np.zeros((2, 28, 28), np.float32), "dtype"),
        (np.zeros((2, 28, 28), np.int64), "dtype"),
        (np.zeros((2, 28, 28, 1), np.uint8), "shape"),
        (np.zeros((28, 28), np.uint8), "shape"),
        (np.zeros((2, 32, 32), np.uint8), "shape"),
    ],
)
def test_bad_images_raise(images, what):
    for corruption in C.CORRUPTIONS.values():
        with pytest.raises(ValueError, match=f"Received: images.{what}"):
            corruption(images)


# ------------------------------------------------------------ exact ones


def test_identity_is_the_identity(digits):
    np.testing.assert_array_equal(C.identity(digits), digits)


def test_stripe_inverts_exactly_the_outer_columns():
    x = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    out = C.stripe(x)
    inverted = np.zeros(28, bool)
    inverted[:7] = inverted[21:] = True
    np.testing.assert_array_equal(out[:, :, inverted], 255 - x[:, :, inverted])
    np.testing.assert_array_equal(out[:, :, ~inverted], x[:, :, ~inverted])
    assert inverted.sum() == 14 and not inverted[7] and not inverted[20]


def test_brightness_adds_half_to_hsv_value(digits):
    from skimage import color

    out = C.brightness(digits)
    # The recipe's round trip through HSV, on the first 20 digits.
    for image, got in zip(digits[:20], out[:20]):
        hsv = color.rgb2hsv(color.gray2rgb(image / 255.0))
        hsv[..., 2] = np.clip(hsv[..., 2] + 0.5, 0, 1)
        reference = color.rgb2gray(color.hsv2rgb(hsv))
        np.testing.assert_allclose(got, np.clip(reference, 0, 1) * 255, atol=0.5 + 1e-6)
    np.testing.assert_allclose(out, np.minimum(digits + 127.5, 255), atol=0.5)


def _centres_of_mass(images):
    return np.array([ndimage.center_of_mass(image) for image in images.astype(float)])


def test_translate_moves_the_centre_of_mass_by_three_pixels(digits):
    ink = digits > 0
    rows, cols = ink.any(axis=2), ink.any(axis=1)
    margin = np.minimum.reduce([rows.argmax(1), cols.argmax(1), rows[:, ::-1].argmax(1), cols[:, ::-1].argmax(1)])
    inside = digits[margin >= 3]  # nothing can fall off the image
    assert len(inside) > 100
    out = C.translate(inside, seed=1)
    np.testing.assert_array_equal(out.sum(axis=(1, 2), dtype=int), inside.sum(axis=(1, 2), dtype=int))
    shift = _centres_of_mass(out) - _centres_of_mass(inside)
    np.testing.assert_allclose(np.abs(shift), 3.0, atol=1e-9)
    for axis in range(2):
        assert (shift[:, axis] > 0).any() and (shift[:, axis] < 0).any()


def test_shear_matches_the_recipe_transform(digits):
    out = C.shear(digits[:60], seed=2)
    signs_seen = set()
    for image, got in zip(digits[:60], out):
        errors = {}
        for sign in (-1, 1):
            s = sign * 0.4
            # scikit-image <= 0.18's AffineTransform(shear=s), as in 2019.
            matrix = np.array([[1.0, -np.sin(s)], [0.0, np.cos(s)]])
            reference = recipe_warp(image[None], matrix)[0]
            errors[sign] = np.abs(got - reference).max()
            np.testing.assert_array_equal(reference, rc_affine(image[None], matrix)[0])
        sign = min(errors, key=errors.get)
        assert errors[sign] <= 1, errors
        signs_seen.add(sign)
    assert signs_seen == {-1, 1}


def test_rotate_matches_skimage_and_scipy(digits):
    out = C.rotate(digits[:60], seed=2)
    signs_seen = set()
    for image, got in zip(digits[:60], out):
        errors = {}
        for sign in (-1, 1):
            r = sign * 0.4
            skimage_tform = transform.AffineTransform(rotation=r).params[:2, :2]
            reference = recipe_warp(image[None], skimage_tform)[0]
            errors[sign] = np.abs(got - reference).max()
            assert np.abs(reference - rc_affine(image[None], skimage_tform)[0]).max() <= 1
        sign = min(errors, key=errors.get)
        assert errors[sign] <= 1, errors
        signs_seen.add(sign)
    assert signs_seen == {-1, 1}


def test_scale_matches_skimage_and_shrinks_the_digit(digits):
    out = C.scale(digits[:60])
    matrix = transform.AffineTransform(scale=1 / 0.7).params[:2, :2]
    reference = recipe_warp(digits[:60], matrix)
    assert np.abs(out - reference).max() <= 1
    assert np.abs(out - rc_affine(digits[:60], matrix)).max() <= 1
    # Ink mass scales with area: 0.7² (bilinear sampling keeps it on average).
    ratio = out.sum() / digits[:60].astype(float).sum()
    assert abs(ratio - 0.49) < 0.02


# ------------------------------------------------------------ noise


def _moments_of_change(values, probabilities, level):
    change = values - level
    mean = probabilities @ change
    var = probabilities @ (change - mean) ** 2
    fourth = probabilities @ (change - mean) ** 4
    return mean, var, fourth


def _check_moments(observed, mean, var, fourth):
    n = observed.size
    assert abs(observed.mean() - mean) <= Z * np.sqrt(var / n)
    # Standard error of a sample variance: sqrt((mu4 - sigma^4) / n).
    assert abs(observed.var() - var) <= Z * np.sqrt((fourth - var**2) / n) + 1e-9


@pytest.mark.parametrize("level", [0, 26, 128, 255])
def test_shot_noise_moments_match_poisson_rate_3(level):
    out = C.shot_noise(constant(level), seed=11).astype(float)
    # Exact law of the output: rint(255 * min(K / 3, 1)), K ~ Poisson(3 x).
    k = np.arange(60)
    probabilities = stats.poisson.pmf(k, 3 * level / 255)
    values = np.rint(255 * np.minimum(k / 3, 1))
    _check_moments(out - level, *_moments_of_change(values, probabilities, level))
    if level == 0:
        assert not out.any()
    # Support: only the levels K/3 can reach.
    assert set(np.unique(out)) <= set(values)


def test_shot_noise_variance_is_level_over_rate_before_clipping():
    # At a low level clipping is negligible: Var = x / 3 on the [0, 1] scale.
    level = 26
    out = C.shot_noise(constant(level, 400), seed=5) / 255.0
    x = level / 255
    assert abs(out.var() - x / 3) < 0.03 * x / 3


def test_impulse_noise_replaces_17_percent_half_salt_half_pepper():
    level = 128
    out = C.impulse_noise(constant(level), seed=9).astype(float)
    n = out.size
    for value, p in ((255, 0.085), (0, 0.085), (level, 0.83)):
        frequency = np.mean(out == value)
        assert abs(frequency - p) <= Z * np.sqrt(p * (1 - p) / n)
    assert set(np.unique(out)) == {0, level, 255}
    values = np.array([255.0, 0.0, level])
    probabilities = np.array([0.085, 0.085, 0.83])
    _check_moments(out - level, *_moments_of_change(values, probabilities, level))


# ------------------------------------------------------------ blur


def test_glass_blur_blurs_along_rows_with_truncation(digits):
    # Without shuffling: vertical Gaussian (sigma 0.7), truncate to levels, again.
    out = C.glass_blur(digits[:50], seed=0, iterations=0)
    first = [filters.gaussian(image / 255.0, sigma=(0.7, 0)) for image in digits[:50]]
    levels = np.floor(np.array(first) * 255.0)
    second = [filters.gaussian(image / 255.0, sigma=(0.7, 0)) for image in levels]
    np.testing.assert_array_equal(out, np.rint(np.clip(second, 0, 1) * 255))


def test_glass_blur_shuffle_is_a_local_permutation():
    x = np.zeros((300, 28, 28), np.uint8)
    x[:, 20, 15] = 255
    out = C.glass_blur(x, seed=1, sigma=1e-3)  # no blur: the pure shuffle
    assert np.all((out == 255).sum(axis=(1, 2)) == 1)
    assert np.all(out.sum(axis=(1, 2), dtype=int) == 255)
    _, rows, cols = np.nonzero(out == 255)
    # Swap partners sit at offsets in {-1, 0}² from the visited pixel: row 0
    # and column 0 are never reached, and a pixel is pushed down or right at
    # most once per sweep (as the partner of an already visited position).
    assert not out[:, 0, :].any() and not out[:, :, 0].any()
    assert (rows - 20).max() <= 2 and (cols - 15).max() <= 2
    assert ((rows != 20) | (cols != 15)).mean() > 0.5
    assert (rows < 20).any() and (rows > 20).any() and (cols < 15).any()


def test_motion_blur_at_zero_angle_is_imagemagick_kernel(digits):
    out = C.motion_blur(digits[:50], seed=0, max_angle=0.0)
    taps = np.arange(21)
    kernel = np.exp(-(taps**2) / 18.0)
    kernel /= kernel.sum()
    # out[r, c] = sum_i k_i x[r, min(c + i, 27)]
    reference = ndimage.correlate1d(digits[:50] / 255.0, kernel, axis=2, mode="nearest", origin=-10)
    np.testing.assert_array_equal(out, np.rint(np.clip(reference, 0, 1) * 255))


def test_motion_blur_streaks_within_45_degrees():
    x = np.zeros((100, 28, 28), np.uint8)
    x[:, 14, 20] = 255
    out = C.motion_blur(x, seed=3).astype(float)
    # The kernel is one-sided: a point spreads towards smaller columns only, at
    # angles within ±45° (|row offset| <= column offset + rounding).
    rows, cols = np.meshgrid(np.arange(28), np.arange(28), indexing="ij")
    lit = out > 0
    assert not lit[:, (cols > 20) | (np.abs(rows - 14) > (20 - cols) + 1)].any()
    # Mass is kept up to rounding of each lit pixel (no edge reached).
    assert np.all(np.abs(out.sum(axis=(1, 2)) - 255) <= 0.5 * lit.sum(axis=(1, 2)))
    # Different images get different angles.
    assert len({image.tobytes() for image in out}) > 20


# ------------------------------------------------------------ fog, spatter


def test_plasma_fractal_points_are_means_of_their_neighbours():
    # With a huge decay only the coarsest level is random; every finer point
    # must then be exactly the mean of its four (toroidal) neighbours.
    maps = C.plasma_fractal(3, seed=0, size=8, decay=1e9).astype(float)
    np.testing.assert_allclose(maps.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(maps.max(axis=(1, 2)), 1)
    roll = lambda a, r, c: np.roll(a, (r, c), axis=(1, 2))  # noqa: E731
    for step in (4, 2):
        half = step // 2
        grid = maps[:, ::half, ::half]  # the points known after this level
        diagonal = (roll(grid, 1, 1) + roll(grid, 1, -1) + roll(grid, -1, 1) + roll(grid, -1, -1)) / 4
        axial = (roll(grid, 1, 0) + roll(grid, -1, 0) + roll(grid, 0, 1) + roll(grid, 0, -1)) / 4
        # Square points (odd, odd) average their diagonal neighbours; diamond
        # points (one odd index) their axial ones.
        square = (slice(None), slice(1, None, 2), slice(1, None, 2))
        np.testing.assert_allclose(grid[square], diagonal[square], atol=1e-6)
        for diamond in (
            (slice(None), slice(0, None, 2), slice(1, None, 2)),
            (slice(None), slice(1, None, 2), slice(0, None, 2)),
        ):
            np.testing.assert_allclose(grid[diamond], axial[diamond], atol=1e-6)


def test_plasma_fractal_equals_a_point_by_point_diamond_square():
    """Each level's noise is Uniform(-w², w²), w = 100 / decay^level, fed the same uniform draws."""
    n, size, decay = 2, 32, 1.4
    rng = np.random.default_rng(5)
    ref = np.zeros((n, size, size))
    step, wibble = size, 100.0
    while step >= 2:
        half, cells = step // 2, size // step
        # The three draws of a level, in the implementation's order: squares, then both diamonds.
        noise = [rng.random((n, cells, cells), dtype=np.float32) * 2.0 - 1.0 for _ in range(3)]
        at = lambda i, j: ref[:, i % size, j % size]  # noqa: E731 (toroidal)
        for a in range(cells):
            for b in range(cells):
                i, j = a * step, b * step
                ref[:, i + half, j + half] = (at(i, j) + at(i + step, j) + at(i, j + step) + at(i + step, j + step)
                                              ) / 4 + wibble**2 * noise[0][:, a, b]  # fmt: skip
        for a in range(cells):
            for b in range(cells):
                i, j = a * step, b * step
                ref[:, i, j + half] = (at(i, j) + at(i, j + step) + at(i + half, j + half) + at(i - half, j + half)
                                       ) / 4 + wibble**2 * noise[1][:, a, b]  # fmt: skip
                ref[:, i + half, j] = (at(i, j) + at(i + step, j) + at(i + half, j + half) + at(i + half, j - half)
                                       ) / 4 + wibble**2 * noise[2][:, a, b]  # fmt: skip
        step, wibble = half, wibble / decay
    ref -= ref.min(axis=(1, 2), keepdims=True)
    ref /= ref.max(axis=(1, 2), keepdims=True)
    maps = C.plasma_fractal(n, np.random.default_rng(5), size=size, decay=decay)
    np.testing.assert_allclose(maps, ref, atol=1e-5)


def test_plasma_fractal_size_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="size=100"):
        C.plasma_fractal(1, size=100)


# MNIST-C's severity 5 (the defaults) and severity 1.
@pytest.mark.parametrize("kwargs, strength, decay", [({}, 3.0, 1.4), ({"strength": 1.5, "decay": 2.0}, 1.5, 2.0)])
def test_fog_is_the_recipe_formula_on_digits_of_any_peak(digits, kwargs, strength, decay):
    # Real digits rescaled so that their brightest level is anything from 255 down to 0:
    # the recipe's normalisation max(x) / (max(x) + s) differs from 1 / (1 + s) for all but 255.
    peaks = np.array([255, 254, 200, 128, 64, 13, 1, 0] * 6)
    x = digits[: len(peaks)].astype(float)
    x = np.rint(x * (peaks / x.max(axis=(1, 2)))[:, None, None]).astype(np.uint8)
    np.testing.assert_array_equal(x.max(axis=(1, 2)), peaks)
    out = C.fog(x, seed=4, **kwargs)
    # MNIST-C fog: x + s P, with P the top-left 28x28 of a 256x256 plasma map per image
    # (the fractal itself is checked point by point above), times max(x) / (max(x) + s).
    fog_maps = C.plasma_fractal(len(x), np.random.default_rng(4), size=256, decay=decay)[:, :28, :28]
    expected = []
    for image, fog_map in zip(x / 255.0, fog_maps.astype(np.float64)):
        max_val = image.max()
        image = image + strength * fog_map
        expected.append(np.clip(image * max_val / (max_val + strength), 0, 1) * 255)
    np.testing.assert_array_equal(out, np.rint(expected))
    assert not out[peaks == 0].any()
    assert len({image.tobytes() for image in fog_maps}) == len(x)  # one map per image


def test_spatter_is_the_recipe_function_of_its_liquid_field(digits):
    x = digits[:30]
    out = C.spatter(x, seed=6)
    liquid = np.random.default_rng(6).normal(0.65, 0.3, size=x.shape)
    expected = []
    for image, field in zip(x / 255.0, liquid):
        field = filters.gaussian(field, sigma=1)
        field[field < 0.65] = 0
        mask = filters.gaussian((field > 0.65).astype(float), sigma=1.5)
        mask[mask < 0.8] = 0
        expected.append(image * (1 - mask) + 63 / 255 * mask)
    np.testing.assert_array_equal(out, np.rint(np.clip(expected, 0, 1) * 255))


def test_spatter_paints_mud_gray():
    black = C.spatter(constant(0), seed=1)
    white = C.spatter(constant(255), seed=1)
    hit = black > 0
    assert 0.01 < hit.mean() < 0.5
    np.testing.assert_array_equal(hit, white < 255)
    # Weights m in [0.8, 1]: black -> [0.8, 1] * 63; white -> 63 .. 0.2*255 + 0.8*63.
    assert black[hit].min() >= np.rint(0.8 * 63) and black[hit].max() <= 63
    assert white[hit].min() >= 63 and white[hit].max() <= np.rint(0.2 * 255 + 0.8 * 63)


# ------------------------------------------------------------ lines, edges


def recipe_line(c0, r0, c1, r1):
    """MNIST-C's `line_from_points` for one line: clip(1 + log(1 - d / 2.3), 0, 1), d the row distance."""
    if c1 == c0:
        return np.zeros((28, 28))
    rows, cols = np.arange(28.0)[:, None], np.arange(28.0)[None, :]
    d = np.clip(np.abs(rows - ((r1 - r0) / (c1 - c0) * (cols - c0) + r0)), 0, 2.3 - 1e-10)
    line = np.clip(1 + np.log(1 - d / 2.3), 0, 1)
    line[:, : int(np.floor(c0))] = 0
    line[:, int(np.ceil(c1)) :] = 0
    return line


def test_line_intensity_is_the_recipe_line():
    rng = np.random.default_rng(0)
    n = 60
    c0, c1 = rng.uniform(0, 5, n), rng.uniform(22, 27.5, n)
    r0, r1 = rng.uniform(-2, 29, (2, n))
    c0[:4] = [0, 3, 2.5, 7]  # integer and half-integer ends
    c1[:4] = [27, 25, 20.5, 7]  # the last one vertical: nothing is drawn
    c0[4], c1[4] = 20, 6  # reversed ends: nothing is drawn
    got = C.line_intensity(c0, r0, c1, r1)
    np.testing.assert_array_equal(got, [recipe_line(*ends) for ends in zip(c0, r0, c1, r1)])
    assert not got[3:5].any()
    # Both the log fall-off and its clipping at 0 (d > 1.45) are exercised.
    assert ((got > 0) & (got < 0.9)).sum() > 500 and (got[5:] == 0).mean() > 0.5


def test_dotted_line_is_the_recipe_on_real_digits(digits):
    x = np.concatenate([digits[:60], constant(0, 20)])
    out = C.dotted_line(x, seed=2)
    # The recipe's draws per image, r0, r1 ~ U{0..26}, here as one generator call.
    r0, r1 = np.random.default_rng(2).integers(0, 27, size=(2, len(x)))
    # Dashes: columns 2-3, 6-7, ..., 26-27 (the line itself stops before 27).
    kept = (np.arange(28) // 2) % 2 == 1
    expected = []
    for image, a, b in zip(x / 255.0, r0, r1):
        line = recipe_line(0, a, 27, b) * kept
        expected.append(np.clip(image + line, 0, 1) * 255)
    np.testing.assert_array_equal(out, np.rint(expected))
    assert not out[60:, :, ~kept].any() and not out[60:, :, 27].any()
    assert (r0 != r1).any() and len(set(r0)) > 10


def test_zigzag_points_for_a_level_line():
    cols, rows, valid = C.zigzag_points(np.array([10]), np.array([10]))
    assert valid.all()
    np.testing.assert_allclose(cols[0], [2, 4, 8, 12, 16, 20, 24, 25])
    np.testing.assert_allclose(rows[0], [10, 12, 8, 12, 8, 12, 8, 10 - 2 / 6])


def test_zigzag_runs_from_column_2_to_25(digits):
    r0 = np.random.default_rng(0).integers(0, 27, 500)
    r1 = r0 + np.random.default_rng(1).integers(-5, 5, 500)
    cols, rows, valid = C.zigzag_points(r0, r1)
    np.testing.assert_allclose(cols[:, 0], 2)
    np.testing.assert_allclose(rows[:, 0], r0)
    last = valid.sum(axis=1) - 1
    end = np.arange(500), last
    assert np.all(np.hypot(cols[end] - 25, rows[end] - r1) < 1.0)
    out = C.zigzag(digits, seed=1)
    assert (out >= digits).all()
    changed = (out != digits).any(axis=(0, 1))
    assert not changed[:2].any() and not changed[26:].any()


def recipe_zigzag(image, r0, r1):
    """MNIST-C's zigzag, corner by corner as the published loop builds it."""
    a = b = 2.0  # length and width of the zigzags
    c0, c1 = 2, 25
    theta = np.arctan((r1 - r0) / (c1 - c0))
    d = (c1 - c0) / np.cos(theta)
    points = [(0.0, 0.0)]
    for i in range(int((d - a) // (2 * a)) + 1):
        r_i = (-1) ** i * b
        points.append(((2 * i + 1) * a, r_i))
    max_c = (2 * a) * (d // (2 * a))
    if d != max_c:
        points.append((d, r_i / (2 * (d - max_c))))
    along, across = np.array(points).T
    cs = np.cos(theta) * along - np.sin(theta) * across + c0
    rs = np.sin(theta) * along + np.cos(theta) * across + r0
    x = image / 255.0
    for i in range(1, len(cs)):
        x = np.clip(x + recipe_line(cs[i - 1], rs[i - 1], cs[i], rs[i]), 0, 1)
    return x * 255


def test_zigzag_is_the_recipe_on_real_digits(digits):
    x = np.concatenate([digits[:60], constant(0, 20)])
    out = C.zigzag(x, seed=5)
    rng = np.random.default_rng(5)
    r0 = rng.integers(0, 27, size=len(x))
    r1 = r0 + rng.integers(-5, 5, size=len(x))
    expected = [recipe_zigzag(image, a, b) for image, a, b in zip(x, r0, r1)]
    np.testing.assert_array_equal(out, np.rint(expected))
    assert (r1 == r0).any() and (r1 < r0).any() and (r1 > r0).any()


@pytest.mark.parametrize("sigma", [None, 2.0])
def test_canny_edges_are_skimage_canny(digits, sigma):
    from skimage import feature

    x = digits[:100]
    if sigma is None:  # the recipe: feature.canny with all its defaults (sigma 1)
        out = C.canny_edges(x)
        expected = [feature.canny(image / 255.0) for image in x]
    else:
        out = C.canny_edges(x, sigma=sigma)
        expected = [feature.canny(image / 255.0, sigma=sigma) for image in x]
    np.testing.assert_array_equal(out, np.where(expected, 255, 0))
    assert 0.02 < np.mean(expected) < 0.5


def test_canny_edges_outline_a_square():
    x = np.zeros((1, 28, 28), np.uint8)
    x[0, 8:20, 8:20] = 255
    edges = C.canny_edges(x)[0]
    assert set(np.unique(edges)) == {0, 255}
    rows, cols = np.nonzero(edges)
    # On the boundary ring of the square (within one pixel), never inside it.
    distance = np.maximum(np.abs(rows - 13.5), np.abs(cols - 13.5))
    assert np.all((distance >= 4.5) & (distance <= 6.5))
    for side in (rows.min(), rows.max(), cols.min(), cols.max()):
        assert 7 <= side <= 20
    assert len(rows) >= 40  # all four sides
