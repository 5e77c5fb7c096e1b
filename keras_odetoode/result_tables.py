"""The test-accuracy tables of the `mnistc` grid (the paper's Tables 1–2), as markdown and CSV.

A cell is one corruption × one model; `cells` maps `cell_key(corruption, model)`
to its record, of which the tables show `test_accuracy`. `PAPER_TABLES` holds the
paper's own two tables, to set beside ours.
"""

_TABLE_1_MODELS = ("dense-1", "dense-10", "node", "nanode-1", "nanode-10",
                   "hypernet-1", "hypernet-10", "odetoode-1", "odetoode-10")  # fmt: skip
_TABLE_1 = {
    "dotted_line": (92.99, 88.22, 91.54, 92.42, 92.74, 91.88, 91.9, 95.42, 95.22),
    "spatter": (93.54, 89.52, 92.49, 93.13, 93.15, 93.19, 93.28, 94.9, 94.9),
    "stripe": (30.55, 20.57, 36.76, 16.4, 21.37, 19.71, 18.69, 44.51, 44.37),
    "translate": (25.8, 24.82, 27.09, 28.97, 29.31, 29.42, 29.3, 26.82, 26.63),
    "rotate": (82.8, 80.38, 82.76, 83.19, 83.65, 83.5, 83.56, 83.9, 84.1),
    "scale": (58.68, 62.73, 62.05, 66.43, 66.63, 67.84, 68.11, 66.68, 66.76),
    "shear": (91.73, 89.52, 91.82, 92.18, 93.11, 92.33, 92.48, 93.37, 92.93),
    "motion_blur": (78.16, 67.25, 75.18, 76.53, 79.22, 78.82, 78.33, 78.63, 77.58),
    "glass_blur": (91.62, 84.89, 87.94, 90.18, 91.07, 91.3, 91.17, 93.91, 93.29),
    "shot_noise": (96.16, 91.63, 94.24, 94.97, 94.73, 94.76, 94.81, 96.91, 96.71),
    "identity": (97.55, 95.73, 97.61, 97.65, 97.69, 97.72, 97.54, 97.94, 97.88),
}
_TABLE_2_MODELS = ("dense-1", "dense-2", "dense-4", "node", "nanode-1", "nanode-2", "nanode-4",
                   "hypernet-1", "hypernet-2", "hypernet-4", "odetoode-1", "odetoode-2", "odetoode-4")  # fmt: skip
_TABLE_2 = {
    "dotted_line": (94.47, 93.21, 91.88, 92.9, 92, 92.02, 92.02, 92.35, 92.91, 92.57, 95.64, 95.66, 95.6),
    "spatter": (94.52, 93.59, 93.63, 93.32, 92.81, 92.82, 92.84, 94.09, 93.94, 93.73, 95.28, 95.47, 95.29),
    "stripe": (29.69, 32.73, 31.49, 36.08, 27.32, 23.56, 24.66, 30.86, 31.12, 29.1, 36.25, 28.21, 31.91),
    "translate": (25.85, 28.35, 27.27, 29.13, 29.11, 29.24, 28.7, 29.85, 29.68, 29.87, 25.61, 26.1, 26.42),
    "rotate": (83.62, 83.73, 83.88, 83.09, 82.5, 82.77, 83.03, 83.96, 84.04, 84.13, 85.1, 85.03, 84.72),
    "scale": (61.41, 65.07, 63.72, 63.62, 65.49, 65.33, 64.03, 69.51, 68.77, 69.8, 67.97, 66.95, 67.09),
    "shear": (92.25, 92.76, 92.55, 92.27, 92.08, 92.18, 92.3, 93.35, 92.84, 93.04, 93.15, 93.06, 93.38),
    "motion_blur": (76.47, 73.89, 74.95, 76.3, 75.24, 75.88, 76.22, 80.67, 81.26, 81.36, 78.92, 79.11, 79.02),
    "glass_blur": (92.5, 89.65, 90.29, 89.47, 89.5, 89.5, 89.8, 93.07, 92.67, 92.69, 94.46, 94.19, 94.3),
    "shot_noise": (96.41, 95.78, 95.22, 95.09, 94.18, 94.12, 93.85, 95.36, 96.88, 96.77, 96.93, 96.88, 96.77),
    "identity": (97.7, 97.75, 97.71, 97.64, 97.6, 97.5, 97.52, 97.7, 97.82, 97.79, 98.03, 98.12, 98.11),
}
#: The paper's Tables 1 and 2 (§5.2.3): {table: {corruption: {model: test accuracy in %}}}, on the 11
#: corruptions it reports. Table 1: width 128, no dropout; Table 2: width 256, dropout 0.1.
PAPER_TABLES = {
    name: {corruption: dict(zip(models, row)) for corruption, row in rows.items()}
    for name, models, rows in (("table1", _TABLE_1_MODELS, _TABLE_1), ("table2", _TABLE_2_MODELS, _TABLE_2))
}


def cell_key(corruption, model):
    """The key of a cell in a results record: "corruption/model"."""
    return f"{corruption}/{model}"


def _corruption_title(name):
    return name.replace("_", " ").title()


def format_tables(corruptions, models, cells, caption=""):
    """The test-accuracy table as (markdown, csv) text, laid out like the paper's Table 1.

    Rows are corruptions and columns models; values are test accuracy in %
    with two decimals. The best value of each row is bold in markdown. A cell
    not finished yet is "–" (markdown) or empty (CSV).
    """
    from keras_odetoode.models import display_name

    def value(corruption, model):
        cell = cells.get(cell_key(corruption, model))
        return None if cell is None else 100.0 * cell["test_accuracy"]

    header = "| Models | " + " | ".join(display_name(model) for model in models) + " |"
    lines = [header, "|---" * (len(models) + 1) + "|"]
    csv = ["corruption," + ",".join(models)]
    for corruption in corruptions:
        values = [value(corruption, model) for model in models]
        rounded = [None if v is None else round(v, 2) for v in values]
        best = max((v for v in rounded if v is not None), default=None)
        texts = ["–" if v is None else (f"**{v:.2f}**" if v == best else f"{v:.2f}") for v in rounded]
        lines.append(f"| {_corruption_title(corruption)} | " + " | ".join(texts) + " |")
        csv.append(corruption + "," + ",".join("" if v is None else f"{v:.2f}" for v in values))
    markdown = "\n".join(lines) + "\n"
    if caption:
        markdown += f"\n{caption}\n"
    return markdown, "\n".join(csv) + "\n"


def table_caption(config, cells, corruptions, models):
    """The sentence under the table: the protocol, the training settings and how many cells are done."""
    done = sum(cell_key(c, m) in cells for c in corruptions for m in models)
    rows = ", ".join(corruptions) if len(corruptions) < 4 else f"{len(corruptions)} MNIST-C configs"
    epochs = f"{config['epochs']} epoch" + ("s" if config["epochs"] != 1 else "")
    train = "all" if config["max_train_examples"] is None else f"the first {config['max_train_examples']}"
    if config["train_on"] == "each":
        protocol = "each model trained on the corruption's own train split"
    else:
        protocol = f"each model trained once on {config['train_on']} and evaluated on every corruption"
    return (
        f"Test accuracy (%) on {rows}; {protocol}; width {config['width']}, dropout {config['dropout']}, "
        f"{epochs}, batch {config['batch_size']}, RiemannianAdam lr {config['learning_rate']}, "
        f"h = {config['step_size']}, {config['projection']} projection, "
        + ("ODEtoODE gates reading the state W_t, " if config.get("gate_inputs") == "state" else "")
        + f"seed {config['seed']}, "
        f"{train} training examples. Best of each row in bold. {done}/{len(corruptions) * len(models)} cells done."
    )
