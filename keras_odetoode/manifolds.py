"""Matrix manifolds of the paper: O(d), the Stiefel manifold ST(n, p), Skew(d), Sym(d).

Every function acts on the last two axes and broadcasts over leading (batch or
population) axes. A matrix is *tall* when it has at least as many rows as columns
(``WᵀW = I`` on ST(n, p)) and *wide* otherwise (``WWᵀ = I``); O(d) = ST(d, d).

Two levels of API, as in geotorch: functions (`skew`, `retract`, ...) and the
`Stiefel` manifold object, which is also a Keras constraint and marks a variable
for the Riemannian optimizers.
"""

import functools
import math

import keras
import numpy as np
import tensorflow as tf

from keras_odetoode.checks import (
    check_choice,
    check_integer,  # noqa: F401  (`manifolds.check_integer`, used by flows and layers)
)

#: Maps Skew(d) → SO(d) for the flows and the Riemannian steps: "expm", the exact
#: exponential of this module (matrix products only); "cayley"; and "tf.linalg.expm",
#: TensorFlow's Padé exponential, the reference "expm" is tested against.
RETRACTIONS = ("expm", "cayley", "tf.linalg.expm")


def _t(a):
    return tf.linalg.matrix_transpose(a)


def skew(a):
    """Skew-symmetric part ½(A − Aᵀ): the Lie algebra Skew(d) of O(d)."""
    return 0.5 * (a - _t(a))


def sym(a):
    """Symmetric part ½(A + Aᵀ) (the Q and N of ISO-ODEtoODE, Eq. 8)."""
    return 0.5 * (a + _t(a))


def bracket(a, b):
    """Lie bracket [A, B] = AB − BA."""
    return tf.matmul(a, b) - tf.matmul(b, a)


def is_tall(shape):
    """Whether a matrix of `shape` has orthonormal columns (rows ≥ cols)."""
    shape = tuple(shape)
    if len(shape) < 2:
        raise ValueError(f"A Stiefel matrix needs at least 2 dimensions. Received: shape={shape}")
    return shape[-2] >= shape[-1]


def check_retraction(retraction):
    return check_choice("retraction", retraction, RETRACTIONS)


def cayley(a):
    """Cayley map (I − A/2)⁻¹(I + A/2): Skew(d) → SO(d), exact in orthogonality."""
    eye = tf.eye(tf.shape(a)[-1], dtype=a.dtype)
    half = 0.5 * a
    return tf.linalg.solve(eye - half, eye + half)


#: Taylor degree m of the exponential by dtype: 8 for float32, evaluated in 3 matrix
#: products (`_taylor8`), 16 for float64 (6 products, Paterson–Stockmeyer), whose unit
#: roundoff is 2²⁹ × smaller. Both are exact up to ‖A‖₂ ≈ 0.47–0.65 (`expm_threshold`).
TAYLOR_DEGREE = {tf.float32: 8, tf.float64: 16}
#: At most this many squarings: `expm` is exact for ‖A‖₂ up to 2⁶⁴ × `expm_threshold`.
MAX_SQUARINGS = 64


@functools.lru_cache(maxsize=None)
def taylor_threshold(degree, unit_roundoff):
    """Largest θ with Σ_{k≥m} θᵏ/k! ≤ u: for ‖A‖₂ ≤ θ the Taylor polynomial of
    degree m matches exp(A) *and its derivative* to the unit roundoff u."""

    def tail(theta):
        term = theta**degree / math.factorial(degree)
        total, k = 0.0, degree
        while term > 1e-30 * max(total, 1e-300):
            total += term
            k += 1
            term *= theta / k
        return total

    low, high = 0.0, 64.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if tail(mid) <= unit_roundoff else (low, mid)
    return low


def expm_threshold(dtype):
    """The θ up to which `taylor_expm` is exp to the unit roundoff of `dtype`."""
    dtype = tf.as_dtype(dtype)
    return taylor_threshold(TAYLOR_DEGREE[dtype], float(np.finfo(dtype.as_numpy_dtype).eps) / 2)


def _taylor(a, a2, degree):
    """Σ_{k≤m} Aᵏ/k! by Paterson–Stockmeyer: powers A…Aˢ, then Horner in Aˢ."""
    s = math.ceil(math.sqrt(degree))
    eye = tf.eye(tf.shape(a)[-1], batch_shape=tf.shape(a)[:-2], dtype=a.dtype)
    powers = [eye, a, a2]
    while len(powers) <= s:
        powers.append(tf.matmul(powers[-1], a))
    coefficient = [1.0 / math.factorial(k) for k in range(degree + 1)]

    def block(j):  # Σ_{i<s} c_{js+i} Aⁱ
        return sum(coefficient[j * s + i] * powers[i] for i in range(s) if j * s + i <= degree)

    top = degree // s
    if degree % s == 0:  # the top block is the scalar c_m: no product
        top -= 1
        p = block(top) + coefficient[degree] * powers[s]
    else:
        p = block(top)
    for j in range(top - 1, -1, -1):
        p = block(j) + tf.matmul(powers[s], p)
    return p


def _taylor8_coefficients():
    """x₁ … x₇, y₂ of `_taylor8`: its polynomial has the Taylor coefficients 1/k!, k ≤ 8.

    Expanding (x₃A² + A⁴')(x₄ + x₅A + x₆A² + x₇A⁴'), A⁴' = x₁A³ + x₂A⁴, and matching
    the coefficients of A³ … A⁸ gives x₁ = 4x₂ (degrees 7, 8), x₂ = x₃(1 + √177)/352
    (the root of the remaining quadratic with the smaller coefficients), then x₇, x₆, x₅,
    x₄ one by one; x₃ only scales the two factors against each other (Bader, Blanes &
    Casas 2019, "Computing the matrix exponential with an optimized Taylor polynomial
    approximation", Sec. 3). `tests/test_expm.py` expands the polynomial and checks.
    """
    c = [1.0 / math.factorial(k) for k in range(9)]
    x3 = 2.0 / 3.0
    x2 = x3 * (1.0 + math.sqrt(177.0)) / 352.0
    x1 = 4.0 * x2
    x7 = c[8] / x2**2
    x6 = (c[6] - x1 * x1 * x7 - x3 * x7 * x2) / x2
    x5 = (c[5] - x3 * x7 * x1 - x1 * x6) / x2
    x4 = (c[4] - x3 * x6 - x1 * x5) / x2
    y2 = c[2] - x3 * x4
    return x1, x2, x3, x4, x5, x6, x7, y2


TAYLOR8_COEFFICIENTS = _taylor8_coefficients()


def _taylor8(a, a2):
    """Σ_{k≤8} Aᵏ/k! in 3 matrix products (A² given): I + A + y₂A² + (x₃A² + A₄)(x₄I + x₅A + x₆A² + x₇A₄)."""
    x1, x2, x3, x4, x5, x6, x7, y2 = TAYLOR8_COEFFICIENTS
    eye = _eye_like(a)
    a4 = tf.matmul(a2, x1 * a + x2 * a2)
    a8 = tf.matmul(x3 * a2 + a4, x4 * eye + (x5 * a + x6 * a2 + x7 * a4))
    return eye + (a + y2 * a2 + a8)


def _eye_like(a):
    """I of A's size: a constant when the size is static (the flows), broadcast over leading axes."""
    d = a.shape[-1]
    if d is None:
        return tf.eye(tf.shape(a)[-1], dtype=a.dtype)
    return tf.constant(np.eye(d), dtype=a.dtype)


def _polynomial(a, a2):
    degree = TAYLOR_DEGREE[a.dtype]
    return _taylor8(a, a2) if degree == 8 else _taylor(a, a2, degree)


def _theta(a2):
    """θ = √‖A²‖₁ per matrix: ‖A‖₂ ≤ θ for a normal (e.g. skew) A."""
    return tf.sqrt(tf.reduce_max(tf.reduce_sum(tf.abs(a2), axis=-2), axis=-1))


def _per_matrix(scalars, a):
    """Per-matrix scalars (A's leading shape) shaped to broadcast against A."""
    return scalars if a.shape.rank == 2 else scalars[..., tf.newaxis, tf.newaxis]


def taylor_expm(a):
    """(T_m(A), θ): the Taylor polynomial of `TAYLOR_DEGREE` and the bound that says whether it is exp(A).

    T_m(A) equals exp(A), and its gradient the derivative of exp, to the unit
    roundoff wherever θ = √‖A²‖₁ ≤ `expm_threshold(dtype)` (A skew, or normal).
    Matrix products only (3 for float32) and no branch: the fast path of the
    flows, which check θ once per trajectory (`flows.AbstractOrthogonalFlow`).
    Beyond the threshold it returns the polynomial of A scaled back onto it: a
    bounded stand-in, not exp(A), which keeps a trajectory that will be
    recomputed finite, and so its (discarded) gradient too.
    θ has the leading (batch) shape of A and no gradient.
    """
    a = tf.convert_to_tensor(a)
    a2 = tf.matmul(a, a)
    theta = tf.stop_gradient(_theta(a2))
    scale = _per_matrix(tf.minimum(tf.constant(1.0, a.dtype), expm_threshold(a.dtype) / theta), a)
    return _polynomial(a * scale, a2 * (scale * scale)), theta


def expm(a):
    """Matrix exponential Skew(d) → SO(d), exact for any generator, batched over leading axes.

    Scaling and squaring on the Taylor polynomial of `taylor_expm`: each matrix
    is scaled by 2⁻ˢ, with s the fewest halvings that bring θ = √‖A²‖₁ within
    `expm_threshold`, and its polynomial squared s times. Matrix products only;
    s is counted from the norm, and the squarings run in one `tf.while_loop`
    with no iteration when every s = 0 (the flows' small steps): no `tf.cond`,
    no `tf.linalg.expm`, so it compiles under XLA, gradient included.
    Other dtypes than float32/64 go to `tf.linalg.expm`.
    """
    a = tf.convert_to_tensor(a)
    if a.dtype not in TAYLOR_DEGREE:
        return tf.linalg.expm(a)
    a2 = tf.matmul(a, a)
    theta = tf.stop_gradient(_theta(a2))
    threshold = expm_threshold(a.dtype)
    # θ ≤ threshold (A = 0 included) takes none; θ = inf the most (NaN propagates anyway).
    halvings = tf.math.ceil(tf.math.log(tf.maximum(theta, threshold) / threshold) / math.log(2.0))
    halvings = tf.clip_by_value(tf.where(tf.math.is_nan(halvings), tf.zeros_like(halvings), halvings), 0, MAX_SQUARINGS)
    scale = _per_matrix(tf.pow(tf.constant(0.5, a.dtype), halvings), a)  # exact: a power of 2
    e = _polynomial(a * scale, a2 * (scale * scale))
    squarings = tf.cast(halvings, tf.int32)

    def square(k, e):
        return k + 1, tf.where(_per_matrix(k < squarings, a), tf.matmul(e, e), e)

    _, e = tf.while_loop(
        lambda k, e: k < tf.reduce_max(squarings),
        square,
        (tf.constant(0), e),
        maximum_iterations=MAX_SQUARINGS,
        name="squarings",
    )
    return tf.ensure_shape(e, a.shape)


@tf.custom_gradient
def linalg_expm(a):
    """`tf.linalg.expm` (Padé 13 with scaling and squaring), the reference of `expm`.

    Its gradient is the adjoint Fréchet derivative L(Aᵀ, G), read off the upper
    right block of exp([[Aᵀ, G], [0, Aᵀ]]) (Higham 2008, Thm. 3.6): exact, and,
    unlike TensorFlow's own gradient of `tf.linalg.expm`, it compiles under XLA.
    """
    a = tf.convert_to_tensor(a)
    e = tf.linalg.expm(a)

    def grad(g):
        d = tf.shape(a)[-1]
        at = _t(a)
        top = tf.concat([at, g], axis=-1)
        bottom = tf.concat([tf.zeros_like(a), at], axis=-1)
        return tf.linalg.expm(tf.concat([top, bottom], axis=-2))[..., :d, d:]

    return e, grad


def exponential_map(retraction):
    """The map Skew(d) → SO(d) named by `retraction` ("expm" or "cayley")."""
    return {"expm": expm, "cayley": cayley, "tf.linalg.expm": linalg_expm}[check_retraction(retraction)]


def orthogonality_error(w):
    """Measured distance from the Stiefel manifold: ‖WᵀW − I‖₂ (tall) or ‖WWᵀ − I‖₂.

    The spectral norm is the largest deviation of a squared singular value from
    1. It is computed in float64 so that the check itself adds no float32
    round-off. Leading axes are batch axes; the result has their shape.
    """
    w = tf.cast(tf.convert_to_tensor(w), tf.float64)
    gram = tf.matmul(w, w, transpose_a=True) if is_tall(w.shape) else tf.matmul(w, w, transpose_b=True)
    eye = tf.eye(tf.shape(gram)[-1], dtype=tf.float64)
    return tf.reduce_max(tf.abs(tf.linalg.eigvalsh(gram - eye)), axis=-1)


def qr_orthonormalize(w):
    """Closest-in-spirit point on ST(n, p): the Q factor of W with diag(R) > 0.

    The sign fix makes the map well defined (and the identity on the manifold)
    and turns QR of a Gaussian matrix into a Haar sample (Mezzadri, 2007).
    """
    w = tf.convert_to_tensor(w)
    tall = is_tall(w.shape)
    m = w if tall else _t(w)
    q, r = tf.linalg.qr(m)
    signs = tf.sign(tf.linalg.diag_part(r))
    signs = tf.where(signs == 0, tf.ones_like(signs), signs)
    q = q * signs[..., tf.newaxis, :]
    return q if tall else _t(q)


def polar_factor(w):
    """The nearest point of ST(n, p) to W in the Frobenius norm: U Vᵀ of W = U Σ Vᵀ.

    W must have full rank p. Leading axes are batch axes.
    """
    _, u, v = tf.linalg.svd(w, full_matrices=False)
    return tf.matmul(u, v, transpose_b=True)


def polar_correction(w, fade_radius=None):
    """One Newton–Schulz step towards the polar factor: W (I − ½ g D), D = WᵀW − I (tall).

    Maps a W with ‖WᵀW − I‖ = ε to one with error ≈ ¾ε², so applied now and
    then it cancels the float32 round-off that a long product of rotations
    accumulates (~3e-7 per step), while moving W by only O(ε).

    g = 1 by default. With `fade_radius` r, g = max(0, 1 − ‖D‖²_F / r²): the
    step fades out with the distance from the manifold, continuously, and
    leaves alone a W that is off it on purpose — an ES member W_0 + σε, whose
    flow W_0 E_1 ⋯ E_i keeps its singular values, which the full step would
    change (and diverges once one exceeds √5). Leading axes are batch axes.
    """
    if not is_tall(w.shape):
        return _t(polar_correction(_t(w), fade_radius))
    gram = tf.matmul(w, w, transpose_a=True)
    eye = tf.eye(tf.shape(gram)[-1], dtype=w.dtype)
    defect = gram - eye
    if fade_radius is None:
        return tf.matmul(w, eye - 0.5 * defect)
    distance2 = tf.reduce_sum(tf.square(defect), axis=(-2, -1), keepdims=True)
    gain = tf.nn.relu(1.0 - distance2 / (fade_radius * fade_radius))
    return tf.matmul(w, eye - 0.5 * gain * defect)


def project_tangent(w, g):
    """Orthogonal projection of a Euclidean gradient G onto the tangent space at W.

    Tall W: G − W sym(WᵀG); wide W: the same applied to the transposes. On O(d)
    this is W skew(WᵀG). The result Z satisfies WᵀZ + ZᵀW = 0 (tall).
    """
    if not is_tall(w.shape):
        return _t(project_tangent(_t(w), _t(g)))
    return g - tf.matmul(w, sym(tf.matmul(w, g, transpose_a=True)))


def skew_generator(w, g):
    """Skew generator of the Riemannian gradient (paper Eq. 8; docs/design.md: tall vs wide).

    Tall W (n×p): A = G Wᵀ − W Gᵀ (n×n), and A W is the Riemannian gradient for
    the canonical metric. Wide W (p×n): A = Gᵀ W − Wᵀ G (n×n), the same rule on
    Wᵀ; the paper's n×n form `G Wᵀ − W Gᵀ` would only rotate a wide matrix within
    its row space, so it could never change the subspace W projects onto.
    """
    if is_tall(w.shape):
        return tf.matmul(g, w, transpose_b=True) - tf.matmul(w, g, transpose_b=True)
    return tf.matmul(g, w, transpose_a=True) - tf.matmul(w, g, transpose_a=True)


def retract(w, g, step_size, retraction="expm"):
    """One Riemannian gradient-descent step on ST(n, p) (Theorem 1's update).

    Tall: W ← R(−η A) W; wide: W ← W R(−η A)ᵀ, with A = `skew_generator(W, G)`
    and R the exponential map (`expm`, or `linalg_expm`, the n×n reference) or the
    Cayley map. Each keeps W on the manifold; one `polar_correction` then removes
    the float32 round-off, so thousands of updates stay within 1e-5 of it. For
    ascent pass −G.

    A tall W with n > 2p takes the same rotation through a 2p×2p map instead
    of an n×n one (`_expm_low_rank`, `_cayley_low_rank`; 784×128: 256×256
    instead of 784×784; `benchmarks/retraction_speed.py`).
    """
    w = tf.convert_to_tensor(w)
    g = tf.convert_to_tensor(g, dtype=w.dtype)
    if not is_tall(w.shape):
        # The wide rule is the tall rule on the transposes (`skew_generator`).
        return _t(retract(_t(w), _t(g), step_size, retraction))
    exp = exponential_map(retraction)
    step_size = tf.cast(tf.convert_to_tensor(step_size, dtype_hint=w.dtype), w.dtype)
    n, p = w.shape[-2], w.shape[-1]
    low_rank = {"expm": _expm_low_rank, "cayley": _cayley_low_rank}.get(retraction)
    if low_rank is not None and n is not None and p is not None and n > 2 * p:
        return polar_correction(low_rank(w, g, step_size))
    return polar_correction(tf.matmul(exp(-step_size * skew_generator(w, g)), w))


#: Degrees m of the truncated series φ(X)Y = Σ_{k≤m} Xᵏ Y/(k+1)! in `_expm_low_rank`,
#: the smallest one whose threshold holds ‖X‖₁ is summed.
PHI_DEGREES = {tf.float32: (6, 10, 16), tf.float64: (8, 14, 24)}


def _expm_low_rank(w, g, step_size):
    """expm(−η A) W for tall W (n×p) and A = G Wᵀ − W Gᵀ, through 2p×2p products.

    With B = WᵀG, S = B − Bᵀ and G⊥ = G − W B, A = U Vᵀ for U = [W G⊥] and
    Vᵀ = [S Wᵀ − G⊥ᵀ; Wᵀ], so expm(−ηA) W = W + U φ(−η VᵀU)(−η VᵀW) with
    φ(X) = Σ Xᵏ/(k+1)!, VᵀU = [[S, −G⊥ᵀG⊥], [I, 0]] and VᵀW = [S; I]
    (WᵀW = I, WᵀG⊥ = 0). The blocks are balanced by c = ‖G⊥ᵀG⊥‖₁^(−1/2)
    (a similarity, which φ commutes with), and φ(X)Y is summed by Horner in
    products of 2p×2p by 2p×p matrices. It stops at the smallest degree m
    of `PHI_DEGREES` with ‖X‖₁ ≤ `taylor_threshold(m + 1)` (a bound on the
    tail in any submultiplicative norm): exact to the unit roundoff. Larger
    steps take `_expm_low_rank_qr`.
    """
    dtype = w.dtype
    if dtype not in PHI_DEGREES:
        return _expm_low_rank_qr(w, g, step_size)
    x, y, basis = _low_rank_factors(w, g, step_size)
    degrees = PHI_DEGREES[dtype]
    unit_roundoff = float(np.finfo(dtype.as_numpy_dtype).eps) / 2
    thresholds = tf.constant([taylor_threshold(m + 1, unit_roundoff) for m in degrees], dtype)
    theta = tf.reduce_max(tf.reduce_sum(tf.abs(x), axis=-2))
    branch = tf.reduce_sum(tf.cast(theta > thresholds, tf.int32))  # len(degrees): beyond all of them
    branches = [lambda m=m: w + tf.matmul(basis, _phi_series(x, y, m)) for m in degrees]
    return tf.switch_case(branch, branches + [lambda: _expm_low_rank_qr(w, g, step_size)])


def _low_rank_factors(w, g, step_size):
    """X (2p×2p), Y (2p×p) and the basis U D (n×2p) of `_expm_low_rank`, balanced."""
    p = w.shape[-1]
    b = tf.matmul(w, g, transpose_a=True)
    g_perp = g - tf.matmul(w, b)
    s = b - _t(b)
    gram = tf.matmul(g_perp, g_perp, transpose_a=True)
    tiny = float(np.finfo(w.dtype.as_numpy_dtype).tiny)
    root = tf.sqrt(tf.maximum(tf.reduce_max(tf.reduce_sum(tf.abs(gram), axis=-2), axis=-1), tiny))
    root = root[..., tf.newaxis, tf.newaxis]  # 1/c
    eye = tf.eye(p, batch_shape=tf.shape(w)[:-2], dtype=w.dtype)
    x = -step_size * tf.concat(
        [tf.concat([s, -gram / root], axis=-1), tf.concat([eye * root, tf.zeros_like(eye)], axis=-1)], axis=-2
    )
    y = -step_size * tf.concat([s, eye * root], axis=-2)
    return x, y, tf.concat([w, g_perp / root], axis=-1)


def _phi_series(x, y, degree):
    """Σ_{k≤m} Xᵏ Y/(k+1)! by Horner: m products of X with a 2p×p block."""
    f = y / math.factorial(degree + 1)
    for k in range(degree - 1, -1, -1):
        f = y / math.factorial(k + 1) + tf.matmul(x, f)
    return f


def _expm_low_rank_qr(w, g, step_size):
    """expm(−η A) W as `_expm_low_rank`, for any step: a 2p×2p exponential.

    With the QR factorisation [W G] = Q R (Q n×2p orthonormal, R = [R_W R_G]),
    A = Q M Qᵀ with M = R_G R_Wᵀ − R_W R_Gᵀ ∈ Skew(2p), so
    expm(−ηA) = I + Q (expm(−ηM) − I) Qᵀ and, as W = Q R_W,
    expm(−ηA) W = W + Q (expm(−ηM) − I) R_W. Exact whatever the rank of G
    (a Householder Q is orthonormal even then).
    """
    p = w.shape[-1]
    q, r = tf.linalg.qr(tf.concat([w, g], axis=-1))
    r_w, r_g = r[..., :p], r[..., p:]
    m = tf.matmul(r_g, r_w, transpose_b=True)
    rotation = expm(-step_size * (m - _t(m)))
    return w + tf.matmul(q, tf.matmul(rotation, r_w) - r_w)


def _cayley_low_rank(w, g, step_size):
    """Cayley(−η A) W for tall W (n×p) and A = U Vᵀ, U = [G W], V = [W −G], by a 2p×2p solve.

    (I + ηA/2)⁻¹(I − ηA/2) W = 2 (I + ηA/2)⁻¹ W − W, and by the Woodbury identity
    (I + η U Vᵀ/2)⁻¹ = I − (η/2) U (I + η VᵀU/2)⁻¹ Vᵀ, so the step is
    W − η U (I + η VᵀU/2)⁻¹ VᵀW (Wen & Yin, 2013). The 2p×2p matrix is always
    invertible: its eigenvalues are 1 + η iλ/2 for the eigenvalues iλ of A.
    """
    p = w.shape[-1]
    u = tf.concat([g, w], axis=-1)
    v = tf.concat([w, -g], axis=-1)
    vu = tf.matmul(v, u, transpose_a=True)
    vw = vu[..., p:]  # the columns of U that are W
    eye = tf.eye(tf.shape(vu)[-1], dtype=w.dtype)
    return w - step_size * tf.matmul(u, tf.linalg.solve(eye + 0.5 * step_size * vu, vw))


def random_stiefel(shape, seed=None, dtype="float32"):
    """Haar-distributed sample from ST(n, p) (tall or wide) as a numpy array."""
    shape = tuple(int(s) for s in shape)
    is_tall(shape)
    rng = np.random.default_rng(seed)
    tall = shape[-2] >= shape[-1]
    m = rng.standard_normal(shape if tall else shape[:-2] + shape[-2:][::-1])
    q = qr_orthonormalize(tf.constant(m, tf.float64)).numpy()
    return (q if tall else np.swapaxes(q, -1, -2)).astype(dtype)


@keras.saving.register_keras_serializable(package="keras_odetoode")
class HaarStiefel(keras.initializers.Initializer):
    """Keras initializer: Haar-random matrix on ST(n, p), or on O(d) when square.

    Args:
        seed: int or None. Same seed, same matrix.

    Example:
        >>> init = HaarStiefel(seed=0)
        >>> w = init((16, 4))  # 16×4 with orthonormal columns
    """

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        seed = self.seed if self.seed is not None else np.random.randint(2**31)
        dtype = keras.backend.standardize_dtype(dtype or keras.config.floatx())
        return tf.constant(random_stiefel(shape, seed=seed, dtype=dtype))

    def get_config(self):
        return {"seed": self.seed}


HaarOrthogonal = HaarStiefel


@keras.saving.register_keras_serializable(package="keras_odetoode")
class Stiefel(keras.constraints.Constraint):
    """The Stiefel manifold ST(n, p) as an object; O(d) is the square case.

    As a Keras constraint it marks a variable as living on the manifold: the
    Riemannian optimizers update it along the tangent space by `retract`, and
    any other Keras optimizer is followed by `qr_orthonormalize` (a projected
    method), so the variable never leaves the manifold.

    Args:
        retraction: "expm" or "cayley", the map used by `retract`.
    """

    def __init__(self, retraction="expm"):
        self.retraction = check_retraction(retraction)

    def __call__(self, w):
        return qr_orthonormalize(w)

    def error(self, w):
        return orthogonality_error(w)

    def contains(self, w, tol=1e-5):
        return bool(tf.reduce_all(orthogonality_error(w) < tol))

    def project(self, w, g):
        return project_tangent(w, g)

    def retract(self, w, g, step_size):
        return retract(w, g, step_size, self.retraction)

    def get_config(self):
        return {"retraction": self.retraction}


def manifold_of(variable):
    """The `Stiefel` manifold a Keras variable is constrained to, or None."""
    constraint = getattr(variable, "constraint", None)
    return constraint if isinstance(constraint, Stiefel) else None


@keras.saving.register_keras_serializable(package="keras_odetoode")
class Symmetric(keras.constraints.Constraint):
    """Sym(d) as a Keras constraint: keeps a variable equal to its symmetric part.

    Marks Q and N of ISO-ODEtoODE; the ES update projects their gradient with
    ½(G + Gᵀ) (Eq. 8), and any Keras optimizer is followed by `sym`.
    """

    def __call__(self, w):
        return sym(w)

    def get_config(self):
        return {}
