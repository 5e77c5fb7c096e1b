"""Strip the volatile metadata of notebooks, keeping their outputs.

    python .ci/strip_notebooks.py tutorials/*.ipynb          # rewrite in place
    python .ci/strip_notebooks.py --check tutorials/*.ipynb  # exit 1 if any would change

Volatile is what changes each time a notebook is run without its content changing:
execution counts, per-cell execution timestamps and UI state, the Python version in
`language_info`, and editor- or host-specific notebook metadata. Outputs (text and images),
cell ids and the kernel name stay. The file is written as nbformat writes it (1-space
indent, sorted keys, UTF-8), so a stripped notebook opens and saves without a diff.
`tests/test_notebooks.py` fails when a notebook has volatile metadata.
"""

import argparse
import copy
import json
import pathlib
import sys

#: Cell metadata set by Jupyter and its extensions when a cell runs or is viewed.
VOLATILE_CELL_KEYS = ("execution", "ExecuteTime", "collapsed", "scrolled")
#: The notebook metadata kept; everything else (widgets, vscode, colab, ...) is dropped.
KEPT_NOTEBOOK_KEYS = ("kernelspec", "language_info")


def strip(notebook):
    """A copy of the notebook (a dict, as `json.load` reads it) without volatile metadata."""
    notebook = copy.deepcopy(notebook)
    notebook["metadata"] = {k: v for k, v in notebook.get("metadata", {}).items() if k in KEPT_NOTEBOOK_KEYS}
    notebook["metadata"].get("language_info", {}).pop("version", None)
    for cell in notebook.get("cells", []):
        for key in VOLATILE_CELL_KEYS:
            cell.get("metadata", {}).pop(key, None)
        if cell.get("cell_type") == "code":
            cell["execution_count"] = None
            for output in cell.get("outputs", []):
                if "execution_count" in output:
                    output["execution_count"] = None
    return notebook


def dumps(notebook):
    """The notebook as nbformat writes it."""
    return json.dumps(notebook, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=pathlib.Path)
    parser.add_argument("--check", action="store_true", help="report notebooks that would change; write nothing")
    args = parser.parse_args()
    changed = []
    for path in args.notebooks:
        text = path.read_text(encoding="utf-8")
        stripped = dumps(strip(json.loads(text)))
        if stripped != text:
            changed.append(path)
            if not args.check:
                path.write_text(stripped, encoding="utf-8")
    for path in changed:
        print(f"{path}: {'has volatile metadata' if args.check else 'stripped'}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
