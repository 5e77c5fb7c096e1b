"""The test-accuracy tables of the `mnistc` grid (the paper's Tables 1–2), as markdown and CSV.

A cell is one corruption × one model; `cells` maps `cell_key(corruption, model)`
to its record, of which the tables show `test_accuracy`.
"""


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
