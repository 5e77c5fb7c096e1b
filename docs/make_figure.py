"""The README's picture: ODEtoODE's nested flows and Lemma 4.1, from the package itself.

python docs/make_figure.py   # writes docs/odetoode.png
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from keras_odetoode import layers, manifolds  # noqa: E402

D, STEPS = 8, 200
H = 1.0 / STEPS


def gradient_ratios(step, x0):
    with tf.GradientTape() as tape:
        tape.watch(x0)
        states = [x0]
        for i in range(STEPS):
            states.append(step(i, states[-1]))
        loss = tf.reduce_sum(states[-1])
    norms = np.array([np.linalg.norm(g) for g in tape.gradient(loss, states)])
    return norms / norms[-1]


def main():
    rng = np.random.default_rng(0)
    x0 = tf.constant(rng.standard_normal((3, D)))
    ode = layers.ODEtoODE(step_size=H, dtype="float64", seed=0)
    ode(x0)
    states = ode.forward(ode.param_dict(), x0, return_states=True).numpy()
    trajectory = ode.parameter_trajectory().numpy()
    times = np.arange(STEPS + 1) * H

    weights, bias = ode.solver_weights(), ode.bias
    ratios_ode = gradient_ratios(lambda i, x: x + H * tf.abs(tf.matmul(x, weights[i + 1], transpose_b=True) + bias), x0)
    stack = layers.DeepNet(STEPS, activation="tanh", dtype="float64", seed=0)
    stack(x0)
    ratios_dense = gradient_ratios(lambda i, x: tf.tanh(tf.matmul(x, stack.kernels[i]) + stack.biases[i]), x0)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for k in range(3):
        axes[0].plot(times, states[:, 0, k], lw=1.5)
    axes[0].set_title("main flow: xₜ (3 coordinates)")
    axes[0].set_xlabel("t")
    for i, j in [(0, 0), (0, 1), (1, 2), (3, 5), (6, 4)]:
        axes[1].plot(times, trajectory[:, i, j], lw=1.5)
    error = manifolds.orthogonality_error(trajectory).numpy().max()
    axes[1].set_title(f"parameter flow on O(d): entries of Wₜ\n(max ‖WₜᵀWₜ − I‖₂ = {error:.0e})")
    axes[1].set_xlabel("t")
    depth = np.arange(STEPS + 1)
    axes[2].semilogy(depth, ratios_ode, label="ODEtoODE, f = |·|")
    axes[2].semilogy(depth, ratios_dense, label=f"tanh Dense stack, depth {STEPS}")
    axes[2].axhspan(1 / np.e, np.e, color="green", alpha=0.1, label="Lemma 4.1 band [1/e, e]")
    axes[2].set_title("‖∂L/∂xₜ‖ / ‖∂L/∂x_T‖")
    axes[2].set_xlabel("layer / step")
    axes[2].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(os.path.dirname(os.path.abspath(__file__)), "odetoode.png"), dpi=90)


if __name__ == "__main__":
    main()
