"""ODEtoODE against a numpy/scipy re-derivation of the paper's Eqs. 5–6 (float32, 1e-5)."""

import math

import keras
import numpy as np
import pytest
import scipy.linalg

from keras_odetoode import HyperNetODE, ODEtoODE, manifolds

D, H, T = 16, 0.04, 1.0


def reference_iso(w0, q, n, b, x, h, steps):
    """Eq. 6: Wᵢ = Wᵢ₋₁ exp(h(Wᵢ₋₁ᵀQWᵢ₋₁N − NWᵢ₋₁ᵀQWᵢ₋₁)); Eq. 5: xᵢ = xᵢ₋₁ + h|Wᵢxᵢ₋₁ + b|."""
    ws = [w0]
    for _ in range(steps):
        w = ws[-1]
        a = w.T @ q @ w
        ws.append(w @ scipy.linalg.expm(h * (a @ n - n @ a)))
    for w in ws[1:]:
        x = x + h * np.abs(x @ w.T + b)
    return np.stack(ws), x


def reference_gated(w0, gates, kernels, b, x, h, steps, horizon):
    """Gated flow: B(t) = Σₖ aₖ(Fₖ(t) − Fₖ(t)ᵀ), Fₖ(t) = Σ_f φ_f(t) Θₖ_f, φ = (1, t/T, sin 2πt/T, cos 2πt/T)."""
    ws = [w0]
    for i in range(steps):
        t = i * h
        phi = [1.0, t / horizon, math.sin(2 * math.pi * t / horizon), math.cos(2 * math.pi * t / horizon)]
        f = [sum(p * kernels[k, j] for j, p in enumerate(phi)) for k in range(len(gates))]
        b_t = sum(a * (fk - fk.T) for a, fk in zip(gates, f))
        ws.append(ws[-1] @ scipy.linalg.expm(h * b_t))
    for w in ws[1:]:
        x = x + h * np.abs(x @ w.T + b)
    return np.stack(ws), x


def gate_mlps(params, v):
    """Σₖ aₖ gₖ(v), gₖ = W₃ tanh(W₂ tanh(W₁ v + b₁) + b₂) + b₃: HyperNet's gate networks."""
    out = 0.0
    for k, a in enumerate(params["gates"]):
        h = np.tanh(v @ params["kernel_1"][k] + params["bias_1"][k])
        h = np.tanh(h @ params["kernel_2"][k] + params["bias_2"][k])
        out = out + a * (h @ params["kernel_3"][k] + params["bias_3"][k])
    return out


def reference_gated_state(params, b, x, h, steps):
    """Gated flow of the state (Sec. 3.1): B(W) = Σₖ aₖ(Fₖ(W) − Fₖ(W)ᵀ), Fₖ(W) = reshape gₖ(vec W)."""
    ws = [params["w0"]]
    d = len(ws[0])
    for _ in range(steps):
        f = gate_mlps(params, ws[-1].reshape(-1)).reshape(d, d)
        ws.append(ws[-1] @ scipy.linalg.expm(h * (f - f.T)))
    for w in ws[1:]:
        x = x + h * np.abs(x @ w.T + b)
    return np.stack(ws), x


def _build(layer, rng):
    x = rng.standard_normal((5, D)).astype("float32")
    layer(x)
    bias = 0.3 * rng.standard_normal(D).astype("float32")
    layer.bias.assign(bias)
    return x, bias


def test_isospectral_layer_matches_eqs_5_and_6(rng):
    layer = ODEtoODE(flow="isospectral", step_size=H, horizon=T, seed=1)
    x, bias = _build(layer, rng)
    q, n = np.asarray(layer.flow.q, np.float64), np.asarray(layer.flow.n, np.float64)
    np.testing.assert_allclose(q, q.T, atol=0)
    assert np.linalg.norm(q @ n - n @ q) > 1.0  # non-commuting: the flow really moves
    w0 = np.asarray(layer.flow.w0, np.float64)
    ws, y = reference_iso(w0, q, n, bias.astype(np.float64), x.astype(np.float64), H, 25)
    assert np.linalg.norm(ws[-1] - ws[0]) > 0.5
    traj = layer.parameter_trajectory().numpy()
    assert traj.shape == (26, D, D)
    np.testing.assert_allclose(traj, ws, atol=1e-5)
    np.testing.assert_allclose(layer(x).numpy(), y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_gates", [1, 3])
def test_gated_layer_matches_its_definition(num_gates, rng):
    layer = ODEtoODE(flow="gated", num_gates=num_gates, step_size=H, horizon=T, seed=2)
    x, bias = _build(layer, rng)
    gates = rng.uniform(0.5, 1.5, num_gates).astype("float32")
    layer.flow.gates.assign(gates)
    kernels = np.asarray(layer.flow.gate_kernels, np.float64)
    w0 = np.asarray(layer.flow.w0, np.float64)
    ws, y = reference_gated(
        w0, gates.astype(np.float64), kernels, bias.astype(np.float64), x.astype(np.float64), H, 25, T
    )
    assert np.linalg.norm(ws[-1] - ws[0]) > 0.5
    np.testing.assert_allclose(layer.parameter_trajectory().numpy(), ws, atol=1e-5)
    np.testing.assert_allclose(layer(x).numpy(), y, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_gates", [1, 2])
def test_gated_layer_of_the_state_matches_its_definition(num_gates, rng):
    layer = ODEtoODE(flow="gated", gate_inputs="state", num_gates=num_gates, hidden_units=5, step_size=H, seed=2)
    x, bias = _build(layer, rng)
    # Non-zero biases and gates away from 1/K, so every term of gₖ is exercised.
    for name in ("bias_1", "bias_2", "bias_3"):
        weight = getattr(layer.flow, name)
        weight.assign(0.2 * rng.standard_normal(weight.shape).astype("float32"))
    layer.flow.gates.assign(rng.uniform(0.5, 1.5, num_gates).astype("float32"))
    params = {k: np.asarray(v, np.float64) for k, v in layer.flow.param_dict().items()}
    ws, y = reference_gated_state(params, bias.astype(np.float64), x.astype(np.float64), H, 25)
    # B depends on W: with W frozen at W_0 the flow would end elsewhere.
    f0 = gate_mlps(params, params["w0"].reshape(-1)).reshape(D, D)
    frozen = params["w0"] @ scipy.linalg.expm(25 * H * (f0 - f0.T))
    assert np.linalg.norm(ws[-1] - ws[0]) > 0.5 and np.linalg.norm(ws[-1] - frozen) > 1e-2
    np.testing.assert_allclose(layer.parameter_trajectory().numpy(), ws, atol=1e-5)
    np.testing.assert_allclose(layer(x).numpy(), y, rtol=1e-5, atol=1e-5)


def test_gated_flow_of_the_state_is_hypernets_network_constrained_to_o_d(rng):
    # The paper's gated-ODEtoODE (Sec. 1, 3.1) is HyperNet's hypernetwork made skew and
    # exponentiated: with the same weights, the same MLP gives HyperNet's velocity g(W)
    # and ODEtoODE's generator B(W) = F − Fᵀ.
    kwargs = dict(num_gates=2, hidden_units=4, step_size=H, seed=7)
    hyper, gated = HyperNetODE(**kwargs), ODEtoODE(flow="gated", gate_inputs="state", **kwargs)
    for layer in (hyper, gated):
        layer(np.zeros((1, D), "float32"))
    assert hyper.flow.count_params() == gated.flow.count_params()
    for name, weight in hyper.flow.param_dict().items():
        np.testing.assert_array_equal(weight.numpy(), gated.flow.param_dict()[name].numpy())
    w = manifolds.random_stiefel((D, D), seed=1).astype("float32")
    g = hyper.flow.velocity(hyper.flow.param_dict(), w.reshape(1, -1)).numpy().reshape(D, D)
    b = gated.flow.generator(gated.flow.prepare(gated.flow.param_dict()), 0.0, w).numpy()
    np.testing.assert_allclose(b, g - g.T, atol=1e-6)
    assert np.linalg.norm(g) > 0.1


@pytest.mark.parametrize("flow", ["isospectral", "gated", "gated-state"])
@pytest.mark.parametrize("retraction", ["expm", "cayley"])
def test_every_weight_of_the_trajectory_is_orthogonal(flow, retraction):
    flow, _, inputs = flow.partition("-")
    options = {"gate_inputs": inputs} if inputs else {}
    layer = ODEtoODE(flow=flow, step_size=0.01, retraction=retraction, seed=3, **options)
    layer(np.zeros((1, 128), "float32"))
    errors = manifolds.orthogonality_error(layer.parameter_trajectory()).numpy()
    assert errors.shape == (101,)
    assert errors.max() < 1e-5


def test_isospectral_flow_preserves_the_spectrum_of_q():
    # H_t = W_tᵀ Q W_t is isospectral (Sec. 3.1): eigenvalues of Q are invariant.
    layer = ODEtoODE(step_size=0.04, seed=4)
    layer(np.zeros((1, 8), "float32"))
    q = np.asarray(layer.flow.q, np.float64)
    traj = layer.parameter_trajectory().numpy().astype(np.float64)
    expected = np.linalg.eigvalsh(q)
    for w in traj:
        np.testing.assert_allclose(np.linalg.eigvalsh(w.T @ q @ w), expected, atol=1e-5)


def test_user_given_w0_is_the_start_of_the_flow():
    w0 = manifolds.random_stiefel((8, 8), seed=9)
    layer = ODEtoODE(w0=w0, step_size=0.5)
    layer(np.zeros((1, 8), "float32"))
    np.testing.assert_allclose(layer.parameter_trajectory().numpy()[0], w0, atol=1e-7)


def test_sequential_and_functional_apis_agree(rng):
    x = rng.standard_normal((4, 8)).astype("float32")
    layer = ODEtoODE(step_size=0.2, seed=5)
    seq = keras.Sequential([keras.Input((8,)), layer])
    inputs = keras.Input((8,))
    functional = keras.Model(inputs, layer(inputs))
    np.testing.assert_allclose(seq(x).numpy(), functional(x).numpy(), atol=0)
    np.testing.assert_allclose(seq.predict(x, verbose=0), layer(x).numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "flow, sigma",
    # At σ = 1 the isospectral generator hWᵀQW N is ~100× larger: its steps amplify
    # round-off so fast that float32 and float64 part ways; the singular values still hold.
    [
        ("isospectral", 0.1),
        ("isospectral", 0.3),
        ("isospectral", 1.0),
        ("gated", 0.1),
        ("gated", 1.0),
        ("gated-state", 0.1),
    ],  # fmt: skip
)
def test_a_w0_off_the_manifold_follows_the_exact_flow(flow, sigma, rng):
    # An ES member θ + σε (§4.2) starts off O(d). Its flow is W_0 E_1 ⋯ E_i, with the
    # singular values of W_0: the round-off corrections must leave it alone (a
    # Newton–Schulz step moved them by up to 0.6 at σ = 0.1, and gave NaN from σ ≈ 0.3).
    options = {"gate_inputs": "state", "hidden_units": 6} if flow == "gated-state" else {}
    layer = ODEtoODE(flow=flow.partition("-")[0], step_size=H, horizon=T, seed=6, **options)
    layer(np.zeros((1, D), "float32"))
    params = {k: np.asarray(v, np.float64) for k, v in layer.flow.param_dict().items()}
    params = {k: v + sigma * rng.standard_normal(v.shape) for k, v in params.items()}
    params = {k: v.astype("float32").astype(np.float64) for k, v in params.items()}
    assert manifolds.orthogonality_error(params["w0"]).numpy() > 0.3
    zeros, x0 = np.zeros(D), np.zeros((1, D))
    if flow == "isospectral":
        q, n = 0.5 * (params["q_matrix"] + params["q_matrix"].T), 0.5 * (params["n_matrix"] + params["n_matrix"].T)
        ws, _ = reference_iso(params["w0"], q, n, zeros, x0, H, 25)
    elif flow == "gated":
        ws, _ = reference_gated(params["w0"], params["gates"], params["gate_kernels"], zeros, x0, H, 25, T)
    else:
        ws, _ = reference_gated_state(params, zeros, x0, H, 25)
    traj = layer.flow.trajectory(25, H, params={k: v.astype("float32") for k, v in params.items()}).numpy()
    scale = np.linalg.norm(params["w0"], 2)
    if not (flow == "isospectral" and sigma > 0.3):
        np.testing.assert_allclose(traj / scale, ws / scale, atol=2e-5)
    np.testing.assert_allclose(
        np.linalg.svd(traj[-1], compute_uv=False), np.linalg.svd(params["w0"], compute_uv=False), rtol=1e-4
    )
