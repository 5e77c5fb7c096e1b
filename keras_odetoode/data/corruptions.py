"""The MNIST-C corruptions (Mu & Gilmer, 2019), regenerated from plain MNIST.

MNIST-C ("MNIST-C: A Robustness Benchmark for Computer Vision", arXiv:1906.02337)
is the identity plus 15 corruptions of the MNIST digits, each at one fixed
severity. This module implements that published recipe — the parameters are
those with which the authors generated the released `mnist_c.zip` (the default
severities of google-research/mnist-c) — in vectorized numpy/scipy code, so the
package can rebuild any config of `mnist_corrupted` offline.

Every corruption has the signature `f(images, seed=0, **recipe_parameters)`:

* `images`: uint8 array of shape `(n, 28, 28)`, 0 = background, 255 = ink.
* `seed`: an int or a `numpy.random.Generator`; the same seed gives the same
  output. Deterministic corruptions accept and ignore it.
* keyword-only recipe parameters, defaulting to the published severity.
* returns a new uint8 array of shape `(n, 28, 28)`. Values are computed in
  [0, 1] and rounded to the nearest of the 256 levels (the published
  functions return floats; the released files hold uint8).

Where the published generator has a quirk that shapes the released data, the
quirk is kept and said so in the docstring (e.g. glass blur blurs along rows
only, glass-blur offsets are never positive, zigzag's last segment).

`CORRUPTIONS` maps each of the 16 TFDS config names of `mnist_corrupted` to its
function, in the TFDS order.
"""

import numpy as np
from scipy import ndimage

IMAGE_SHAPE = (28, 28)
# Affine corruptions keep the image centre fixed; pixel centres run 0..27.
_CENTER = (IMAGE_SHAPE[0] - 1) / 2.0
# Chunk size for corruptions with per-pixel index or map temporaries, so that
# memory stays bounded for a whole 60k split; results do not depend on it.
_CHUNK = 4096


def check_images(images):
    """Return `images` as an array after checking it is uint8 of shape (n, 28, 28).

    Raises:
        ValueError: if the dtype or the shape is not the MNIST one.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8:
        raise ValueError(
            "MNIST-C corruptions take uint8 images (0 = background, 255 = ink). "
            f"Received: images.dtype={images.dtype}. Expected: uint8"
        )
    if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            "MNIST-C corruptions take a batch of 28x28 images. "
            f"Received: images.shape={images.shape}. Expected: (n, 28, 28)"
        )
    return images


def _unit(images):
    return images.astype(np.float64) / 255.0


def _to_uint8(unit_images):
    return np.rint(np.clip(unit_images, 0.0, 1.0) * 255.0).astype(np.uint8)


def _chunks(n):
    return (slice(start, min(start + _CHUNK, n)) for start in range(0, n, _CHUNK))


def _random_signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


# ---------------------------------------------------------------- noise


def identity(images, seed=0):
    """The uncorrupted digits (config `identity`): a copy of `images`."""
    del seed
    return check_images(images).copy()


def shot_noise(images, seed=0, *, rate=3.0):
    """Shot (Poisson) noise: each pixel becomes `Poisson(rate * x) / rate`.

    With x in [0, 1], the corrupted value has mean x and variance x / rate
    before clipping to [0, 1]. MNIST-C uses severity 5 of its noise table:
    `rate=3`.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.
        rate: photon count at full intensity.

    Returns:
        uint8 array (n, 28, 28).

    Example:

    >>> noisy = shot_noise(np.full((2, 28, 28), 128, np.uint8), seed=1)
    """
    x = _unit(check_images(images))
    rng = np.random.default_rng(seed)
    return _to_uint8(rng.poisson(x * rate) / rate)


def impulse_noise(images, seed=0, *, amount=0.17, salt_fraction=0.5):
    """Impulse (salt-and-pepper) noise on a fraction `amount` of the pixels.

    Each pixel independently becomes 255 with probability
    `amount * salt_fraction`, 0 with probability `amount * (1 - salt_fraction)`,
    and is kept otherwise. MNIST-C uses severity 4: `amount=0.17`, half salt.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.
        amount: probability that a pixel is replaced.
        salt_fraction: share of the replaced pixels that become white.

    Returns:
        uint8 array (n, 28, 28).
    """
    images = check_images(images)
    u = np.random.default_rng(seed).random(images.shape)
    salt = u < amount * salt_fraction
    pepper = ~salt & (u < amount)
    return np.where(salt, np.uint8(255), np.where(pepper, np.uint8(0), images))


# ---------------------------------------------------------------- blur


def _local_shuffle(images, rng, max_delta, iterations):
    """Glass-blur pixel swaps, run on all images at once (in place).

    Pixels are visited bottom-right to top-left; each is swapped, with
    probability 1/2, with the pixel at offset (dy, dx) drawn uniformly from
    [-max_delta, max_delta - 1] — the half-open range of the published
    generator, so a swap partner always lies up and/or to the left.
    """
    n, height, width = images.shape
    rows = np.arange(n)
    positions = range(height - max_delta, max_delta, -1)
    for _ in range(iterations):
        swap = rng.random((n, height, width)) < 0.5
        offsets = rng.integers(-max_delta, max_delta, size=(n, height, width, 2))
        offsets[~swap] = 0  # swapping a pixel with itself is a no-op
        for h in positions:
            for w in range(width - max_delta, max_delta, -1):
                h2 = h + offsets[:, h, w, 0]
                w2 = w + offsets[:, h, w, 1]
                here = images[:, h, w].copy()
                images[:, h, w] = images[rows, h2, w2]
                images[rows, h2, w2] = here
    return images


def glass_blur(images, seed=0, *, sigma=0.7, max_delta=1, iterations=2):
    """Glass blur: Gaussian blur, local pixel shuffling, Gaussian blur.

    MNIST-C uses severity 1 of its table: `sigma=0.7`, `max_delta=1`,
    `iterations=2`. The published generator called its Gaussian filter with the
    image's last axis marked as a colour channel, so both blurs act along the
    rows axis (vertically) only; that is what the released data contain, and
    what this function does. The first blur is truncated to integer levels
    before shuffling, as in the recipe.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.
        sigma: standard deviation of the Gaussian blurs, in pixels.
        max_delta: largest swap distance, in pixels, per axis.
        iterations: number of shuffling sweeps over the image.

    Returns:
        uint8 array (n, 28, 28).
    """
    x = _unit(check_images(images))
    rng = np.random.default_rng(seed)
    blurred = ndimage.gaussian_filter1d(x, sigma, axis=1, mode="nearest")
    levels = np.floor(blurred * 255.0).astype(np.uint8)
    levels = _local_shuffle(levels, rng, max_delta, iterations)
    return _to_uint8(ndimage.gaussian_filter1d(_unit(levels), sigma, axis=1, mode="nearest"))


def motion_blur_kernel(radius=10, sigma=3.0):
    """Weights of ImageMagick's one-sided motion-blur kernel.

    `2 * ceil(radius) + 1` taps `exp(-i² / (2 sigma²))`, i = 0, 1, …, normalized
    to sum 1 (ImageMagick `MotionBlurImage`, which MNIST-C used).
    """
    taps = np.arange(2 * int(np.ceil(radius)) + 1, dtype=np.float64)
    kernel = np.exp(-(taps**2) / (2.0 * sigma**2))
    return kernel / kernel.sum()


def motion_blur(images, seed=0, *, radius=10, sigma=3.0, max_angle=45.0):
    """Motion blur along a random direction, as ImageMagick's `-motion-blur`.

    Output pixel (r, c) is `sum_i k_i * x[r + dr_i, c + dc_i]`, where `k` is
    `motion_blur_kernel(radius, sigma)` and the tap offsets
    `(dr_i, dc_i) = (round(i sin a), round(i cos a))` (halves rounded down) step
    away along the angle `a ~ Uniform(-max_angle, max_angle)` degrees, drawn
    per image; coordinates beyond the border take the edge pixel. MNIST-C uses
    severity 1: `radius=10`, `sigma=3`, angles within ±45°.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.
        radius: kernel radius in pixels (the kernel has 2 * radius + 1 taps).
        sigma: Gaussian fall-off of the kernel, in pixels.
        max_angle: largest absolute blur angle, in degrees.

    Returns:
        uint8 array (n, 28, 28).
    """
    x = _unit(check_images(images))
    n, height, width = x.shape
    kernel = motion_blur_kernel(radius, sigma)
    angles = np.deg2rad(np.random.default_rng(seed).uniform(-max_angle, max_angle, n))
    taps = np.arange(kernel.size)
    d_row = np.ceil(taps * np.sin(angles)[:, None] - 0.5).astype(np.intp)
    d_col = np.ceil(taps * np.cos(angles)[:, None] - 0.5).astype(np.intp)
    row_grid = np.arange(height)[None, :, None]
    col_grid = np.arange(width)[None, None, :]
    out = np.zeros_like(x)
    for part in _chunks(n):
        for i, weight in enumerate(kernel):
            # Offsets differ per image: gather rows, then columns, clamped to the edge.
            rows = np.clip(row_grid + d_row[part, i, None, None], 0, height - 1)
            cols = np.clip(col_grid + d_col[part, i, None, None], 0, width - 1)
            shifted = np.take_along_axis(x[part], rows, axis=1)
            out[part] += weight * np.take_along_axis(shifted, cols, axis=2)
    return _to_uint8(out)


# ---------------------------------------------------------------- affine


def _warp(x, matrices, translations):
    """Bilinear resampling of each image at `A_k @ (col, row) + t_k`.

    `matrices` (n, 2, 2) and `translations` (n, 2) map output (col, row)
    coordinates to input ones (skimage `warp` with an `inverse_map`); samples
    that fall outside the image see zeros beyond the border, so edges fade out
    over one pixel as in skimage's constant mode.
    """
    n, height, width = x.shape
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    grid = np.stack([cols.ravel(), rows.ravel()]).astype(np.float64)  # (2, h*w)
    out = np.empty_like(x)
    for part in _chunks(n):
        src = matrices[part] @ grid + translations[part, :, None]  # (b, 2, h*w)
        col0 = np.floor(src[:, 0])
        row0 = np.floor(src[:, 1])
        f_col = src[:, 0] - col0
        f_row = src[:, 1] - row0
        # One ring of zeros around the image; anything further is clamped onto it.
        padded = np.pad(x[part], ((0, 0), (1, 1), (1, 1))).reshape(len(col0), -1)
        acc = np.zeros_like(f_col)
        for d_row, w_row in ((0, 1.0 - f_row), (1, f_row)):
            r = np.clip(row0 + d_row + 1, 0, height + 1).astype(np.intp)
            for d_col, w_col in ((0, 1.0 - f_col), (1, f_col)):
                c = np.clip(col0 + d_col + 1, 0, width + 1).astype(np.intp)
                values = np.take_along_axis(padded, r * (width + 2) + c, axis=1)
                acc += w_row * w_col * values
        out[part] = acc.reshape(-1, height, width)
    return out


def _centred_warp(x, matrices):
    """`_warp` with the translation that keeps the image centre fixed."""
    center = np.full(2, _CENTER)
    translations = center - matrices @ center
    return _warp(x, matrices, translations)


def shear_matrices(shears):
    """Inverse maps (col, row) of a horizontal shear by each angle (radians).

    `[[1, -sin s], [0, cos s]]`: skimage's `AffineTransform(shear=s)` as it was
    when MNIST-C was generated (scikit-image <= 0.18).
    """
    shears = np.asarray(shears, dtype=np.float64)
    matrices = np.zeros(shears.shape + (2, 2))
    matrices[..., 0, 0] = 1.0
    matrices[..., 0, 1] = -np.sin(shears)
    matrices[..., 1, 1] = np.cos(shears)
    return matrices


def rotation_matrices(angles):
    """Inverse maps (col, row) of a rotation by each angle (radians)."""
    angles = np.asarray(angles, dtype=np.float64)
    cos, sin = np.cos(angles), np.sin(angles)
    return np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)


def shear(images, seed=0, *, angle=0.4):
    """Horizontal shear by ±`angle` radians about the image centre.

    The sign is drawn per image. The inverse map is `shear_matrices`; bilinear
    interpolation, zeros outside. MNIST-C uses severity 2: `angle=0.4`.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.
        angle: shear angle, radians.

    Returns:
        uint8 array (n, 28, 28).
    """
    x = _unit(check_images(images))
    signs = _random_signs(np.random.default_rng(seed), len(x))
    return _to_uint8(_centred_warp(x, shear_matrices(signs * angle)))


def rotate(images, seed=0, *, angle=0.4):
    """Rotation by ±`angle` radians about the image centre.

    The sign is drawn per image; bilinear interpolation, zeros outside.
    MNIST-C uses severity 2: `angle=0.4` (about 22.9°).

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.
        angle: rotation angle, radians.

    Returns:
        uint8 array (n, 28, 28).
    """
    x = _unit(check_images(images))
    signs = _random_signs(np.random.default_rng(seed), len(x))
    return _to_uint8(_centred_warp(x, rotation_matrices(signs * angle)))


def scale(images, seed=0, *, factor=0.7):
    """Shrink (factor < 1) or enlarge the digit by `factor` about the centre.

    Deterministic. The inverse map scales coordinates by `1 / factor`; bilinear
    interpolation, zeros outside. MNIST-C uses severity 3: `factor=0.7`.

    Args:
        images: uint8 array (n, 28, 28).
        seed: ignored.
        factor: linear size of the output digit relative to the input.

    Returns:
        uint8 array (n, 28, 28).
    """
    del seed
    x = _unit(check_images(images))
    matrices = np.broadcast_to(np.eye(2) / factor, (len(x), 2, 2))
    return _to_uint8(_centred_warp(x, matrices))


def translate(images, seed=0, *, shift=3):
    """Shift the digit by ±`shift` pixels along each axis (signs drawn per image).

    Whole-pixel shifts, zeros shifted in. MNIST-C uses severity 3: `shift=3`.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.
        shift: shift in pixels along rows and along columns.

    Returns:
        uint8 array (n, 28, 28).
    """
    x = _unit(check_images(images))
    offsets = shift * _random_signs(np.random.default_rng(seed), (len(x), 2))
    matrices = np.broadcast_to(np.eye(2), (len(x), 2, 2))
    return _to_uint8(_warp(x, matrices, offsets))


# ---------------------------------------------------------------- intensity


def brightness(images, seed=0, *, delta=0.5):
    """Brightness: add `delta` to the HSV value channel.

    For a gray image V = x and S = 0, so the recipe (gray → RGB → HSV, V + delta,
    → RGB → gray with weights summing to 1) reduces exactly to
    `clip(x + delta, 0, 1)`. Deterministic. MNIST-C uses severity 5:
    `delta=0.5`.

    Args:
        images: uint8 array (n, 28, 28).
        seed: ignored.
        delta: value added, on the [0, 1] scale.

    Returns:
        uint8 array (n, 28, 28).
    """
    del seed
    return _to_uint8(_unit(check_images(images)) + delta)


def stripe(images, seed=0):
    """Stripe: invert columns 0–6 and 21–27 (`255 - x`), keep 7–20. Deterministic."""
    del seed
    out = check_images(images).copy()
    out[:, :, :7] = 255 - out[:, :, :7]
    out[:, :, 21:] = 255 - out[:, :, 21:]
    return out


def plasma_fractal(n, seed=0, *, size=256, decay=1.4):
    """`n` diamond-square height maps of side `size`, each rescaled to [0, 1].

    The maps are toroidal: the corner value starts at 0, each refinement level
    sets a new point to the mean of its four neighbours plus
    `Uniform(-w², w²)` noise, with `w = 100` at the coarsest level, divided by
    `decay` at each finer one (the fog of ImageNet-C and MNIST-C).

    Args:
        n: number of maps.
        seed: int or `numpy.random.Generator`.
        size: side length, a power of two.
        decay: roughness decay per level; larger is smoother.

    Returns:
        float32 array (n, size, size) with min 0 and max 1 per map.
    """
    if size < 2 or size & (size - 1):
        raise ValueError(f"The plasma map side must be a power of two. Received: size={size}")
    rng = np.random.default_rng(seed)
    maps = np.zeros((n, size, size), np.float32)
    step, wibble = size, 100.0

    def noisy_mean(neighbour_sum, wibble):
        noise = rng.random(neighbour_sum.shape, dtype=np.float32) * 2.0 - 1.0
        return neighbour_sum / 4.0 + np.float32(wibble * wibble) * noise

    while step >= 2:
        half = step // 2
        # Corner grid with the torus' first row and column repeated after the
        # last, and centre grid with its last ones repeated before the first:
        # neighbours are then plain slices.
        corners = np.pad(maps[:, ::step, ::step], ((0, 0), (0, 1), (0, 1)), "wrap")
        here, below = corners[:, :-1, :-1], corners[:, 1:, :-1]
        right = corners[:, :-1, 1:]
        # Square step: centre of each cell from its four corners.
        maps[:, half::step, half::step] = noisy_mean(here + below + right + corners[:, 1:, 1:], wibble)
        centres = maps[:, half::step, half::step]
        centres = np.pad(centres, ((0, 0), (1, 0), (1, 0)), "wrap")
        centre = centres[:, 1:, 1:]
        above, left = centres[:, :-1, 1:], centres[:, 1:, :-1]
        # Diamond step: each edge midpoint from two corners and two centres.
        maps[:, ::step, half::step] = noisy_mean(here + right + centre + above, wibble)
        maps[:, half::step, ::step] = noisy_mean(here + below + centre + left, wibble)
        step, wibble = half, wibble / decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    maps /= maps.max(axis=(1, 2), keepdims=True)
    return maps


def fog(images, seed=0, *, strength=3.0, decay=1.4):
    """Fog: add a plasma fractal, rescaled to stay below the image's brightest level.

    `x + strength * P` times `max(x) / (max(x) + strength)`, with `P` the
    top-left 28×28 crop of a 256×256 `plasma_fractal` drawn per image.
    MNIST-C uses severity 5: `strength=3`, `decay=1.4`.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.
        strength: weight of the fog.
        decay: roughness decay of the fractal (larger is smoother).

    Returns:
        uint8 array (n, 28, 28).
    """
    x = _unit(check_images(images))
    rng = np.random.default_rng(seed)
    height, width = IMAGE_SHAPE
    fog_maps = np.empty_like(x)
    # Each map is 256 KiB; small batches keep them in cache.
    for start in range(0, len(x), 64):
        maps = plasma_fractal(min(64, len(x) - start), rng, size=256, decay=decay)
        fog_maps[start : start + 64] = maps[:, :height, :width]
    peak = x.max(axis=(1, 2), keepdims=True)
    return _to_uint8((x + strength * fog_maps) * peak / (peak + strength))


def spatter(
    images,
    seed=0,
    *,
    mean=0.65,
    std=0.3,
    sigma=1.0,
    threshold=0.65,
    mask_sigma=1.5,
    mask_threshold=0.8,
    color=63.0 / 255.0,
):
    """Mud spatter: blotches of gray `color` pasted over the digit.

    A Gaussian field `N(mean, std²)` is blurred (`sigma`), its points above
    `threshold` form a mask; the mask is blurred (`mask_sigma`) and kept where
    it reaches `mask_threshold`, giving weights m; the output is
    `x (1 - m) + color m`. MNIST-C uses severity 4:
    `(0.65, 0.3, 1, 0.65, 1.5)`, mask threshold 0.8, color 63/255.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.
        mean, std: mean and standard deviation of the liquid field.
        sigma: blur of the liquid field, in pixels.
        threshold: liquid level above which a pixel is wet.
        mask_sigma: blur of the wet mask, in pixels.
        mask_threshold: blurred-mask weights below it are dropped.
        color: gray level of the mud, on the [0, 1] scale.

    Returns:
        uint8 array (n, 28, 28).
    """
    x = _unit(check_images(images))
    liquid = np.random.default_rng(seed).normal(mean, std, size=x.shape)
    liquid = ndimage.gaussian_filter(liquid, (0, sigma, sigma), mode="nearest")
    wet = (liquid > threshold).astype(np.float64)
    mask = ndimage.gaussian_filter(wet, (0, mask_sigma, mask_sigma), mode="nearest")
    mask[mask < mask_threshold] = 0.0
    return _to_uint8(x * (1.0 - mask) + color * mask)


# ---------------------------------------------------------------- lines


def line_intensity(c0, r0, c1, r1):
    """Anti-aliased line through (c0, r0) and (c1, r1), one per image.

    The published MNIST-C line: with `d` the vertical distance of a pixel
    centre from the line, the intensity is `clip(1 + log(1 - d / 2.3), 0, 1)`
    (1 on the line, 0 from d ≈ 1.45 on), kept on columns `floor(c0)` to
    `ceil(c1) - 1`. A vertical line (c0 == c1) draws nothing.

    Args:
        c0, r0, c1, r1: arrays (n,) of end point columns and rows.

    Returns:
        float array (n, 28, 28) in [0, 1].
    """
    c0, r0, c1, r1 = (np.asarray(v, np.float64)[:, None, None] for v in (c0, r0, c1, r1))
    height, width = IMAGE_SHAPE
    rows = np.arange(height, dtype=np.float64)[None, :, None]
    cols = np.arange(width, dtype=np.float64)[None, None, :]
    flat = c1 == c0
    slope = np.where(flat, 0.0, r1 - r0) / np.where(flat, 1.0, c1 - c0)
    dist = np.clip(np.abs(rows - (slope * (cols - c0) + r0)), 0.0, 2.3 - 1e-10)
    line = np.clip(np.log(1.0 - dist / 2.3) + 1.0, 0.0, 1.0)
    inside = (cols >= np.floor(c0)) & (cols < np.ceil(c1)) & ~flat
    return np.where(inside, line, 0.0)


def dotted_line(images, seed=0):
    """Add a dotted line across the image, from (col 0, row r0) to (col 27, row r1).

    `r0, r1` uniform on 0..26 per image; the line is drawn in dashes of two
    columns: columns 2–3, 6–7, …, 22–23 and 26 (the recipe's line stops before
    column 27). Pixels are `min(x + line, 1)`.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.

    Returns:
        uint8 array (n, 28, 28).
    """
    x = _unit(check_images(images))
    r0, r1 = np.random.default_rng(seed).integers(0, 27, size=(2, len(x)))
    zeros, ends = np.zeros(len(x)), np.full(len(x), 27.0)
    line = line_intensity(zeros, r0, ends, r1)
    dashes = (np.arange(IMAGE_SHAPE[1]) // 2) % 2 == 1
    return _to_uint8(x + line * dashes)


def zigzag_points(r0, r1, *, c0=2.0, c1=25.0, length=2.0, amplitude=2.0):
    """Corner points of the MNIST-C zigzag from (c0, r0) towards (c1, r1).

    Along the straight segment, of length `d`, the corners sit at
    `((2i + 1) * length, ±amplitude)`; the path starts at 0 and, unless `d` is
    a multiple of `2 * length`, ends at `(d, r_last / (2 (d - 4 floor(d / 4))))`
    with `r_last` the last corner's offset — the published recipe's end point,
    kept as is. The points are then rotated onto the segment's direction.

    Args:
        r0, r1: arrays (n,) of start and end rows.

    Returns:
        cols, rows: float arrays (n, k) of corner coordinates, and `valid`,
        a bool array (n, k) marking the points each zigzag really has (they
        come first).
    """
    r0 = np.asarray(r0, np.float64)[:, None]
    r1 = np.asarray(r1, np.float64)[:, None]
    theta = np.arctan((r1 - r0) / (c1 - c0))
    d = (c1 - c0) / np.cos(theta)
    corners = ((d - length) // (2 * length)).astype(int) + 1
    whole = (2 * length) * (d // (2 * length))
    has_end = d != whole
    # Point j: 0 is the start, 1..corners the corners, corners + 1 the end.
    j = np.arange(corners.max(initial=0) + 2)[None, :]
    along = np.where(j == 0, 0.0, (2 * j - 1) * length)
    across = np.where(j == 0, 0.0, (-1.0) ** (j - 1) * amplitude)
    last_across = (-1.0) ** (corners - 1) * amplitude
    is_end = has_end & (j == corners + 1)
    along = np.where(is_end, d, along)
    end_across = last_across / (2.0 * np.where(has_end, d - whole, 1.0))
    across = np.where(is_end, end_across, across)
    valid = j < corners + 1 + has_end
    cos, sin = np.cos(theta), np.sin(theta)
    cols = cos * along - sin * across + c0
    rows = sin * along + cos * across + r0
    return cols, rows, valid


def zigzag(images, seed=0):
    """Add a zigzag line across the digit.

    It runs from column 2 at row `r0 ~ U{0..26}` towards column 25 at row
    `r0 + U{-5..4}`, with corners every 2 pixels along the path, 2 pixels off
    it (`zigzag_points`); each piece is a `line_intensity` segment and pixels
    are `min(x + sum of pieces, 1)`.

    Args:
        images: uint8 array (n, 28, 28).
        seed: int or `numpy.random.Generator`.

    Returns:
        uint8 array (n, 28, 28).
    """
    x = _unit(check_images(images))
    rng = np.random.default_rng(seed)
    r0 = rng.integers(0, 27, size=len(x))
    r1 = r0 + rng.integers(-5, 5, size=len(x))
    cols, rows, valid = zigzag_points(r0, r1)
    total = np.zeros_like(x)
    for j in range(cols.shape[1] - 1):
        piece = line_intensity(cols[:, j], rows[:, j], cols[:, j + 1], rows[:, j + 1])
        total += np.where(valid[:, j + 1, None, None], piece, 0.0)
    return _to_uint8(x + total)


def canny_edges(images, seed=0, *, sigma=1.0):
    """Replace the digit by its Canny edge map (edges 255, rest 0). Deterministic.

    `skimage.feature.canny` with its default thresholds, as in the recipe; it
    works on one image at a time, so this loops over the batch.

    Args:
        images: uint8 array (n, 28, 28).
        seed: ignored.
        sigma: Gaussian smoothing before the gradient, in pixels.

    Returns:
        uint8 array (n, 28, 28) with values 0 and 255.
    """
    from skimage import feature  # slow to import; only this corruption needs it

    del seed
    x = _unit(check_images(images))
    edges = np.zeros(x.shape, bool)
    for i, image in enumerate(x):
        edges[i] = feature.canny(image, sigma=sigma)
    return edges.astype(np.uint8) * np.uint8(255)


CORRUPTIONS = {
    "identity": identity,
    "shot_noise": shot_noise,
    "impulse_noise": impulse_noise,
    "glass_blur": glass_blur,
    "motion_blur": motion_blur,
    "shear": shear,
    "scale": scale,
    "rotate": rotate,
    "brightness": brightness,
    "translate": translate,
    "stripe": stripe,
    "fog": fog,
    "spatter": spatter,
    "dotted_line": dotted_line,
    "zigzag": zigzag,
    "canny_edges": canny_edges,
}
CORRUPTION_NAMES = tuple(CORRUPTIONS)


def get_corruption(name):
    """The corruption function registered as `name` (a TFDS config name).

    Raises:
        ValueError: if `name` is not one of `CORRUPTION_NAMES`.
    """
    if name not in CORRUPTIONS:
        raise ValueError(
            f"Unknown MNIST-C corruption. Received: corruption={name!r}. Expected one of: {', '.join(CORRUPTION_NAMES)}"
        )
    return CORRUPTIONS[name]


def corrupt(images, corruption, seed=0):
    """Apply the MNIST-C corruption named `corruption` to uint8 images (n, 28, 28).

    Example:

    >>> rotated = corrupt(np.zeros((4, 28, 28), np.uint8), "rotate", seed=0)
    """
    return get_corruption(corruption)(images, seed=seed)
