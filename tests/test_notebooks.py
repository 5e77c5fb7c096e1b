"""Tutorial notebooks are committed with their outputs and without volatile metadata."""

import importlib.util
import json
import pathlib

import pytest

ROOT = pathlib.Path(__file__).parent.parent
NOTEBOOKS = sorted((ROOT / "tutorials").glob("*.ipynb"))


def _strip_notebooks():
    spec = importlib.util.spec_from_file_location("strip_notebooks", ROOT / ".ci" / "strip_notebooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


strip_notebooks = _strip_notebooks()


def test_there_are_tutorials():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_outputs_and_no_volatile_metadata(path):
    text = path.read_text(encoding="utf-8")
    notebook = json.loads(text)
    assert any(cell.get("outputs") for cell in notebook["cells"]), f"{path.name} was committed without its outputs"
    assert strip_notebooks.dumps(strip_notebooks.strip(notebook)) == text, (
        f"{path.name} has volatile metadata (execution counts, timestamps, the Python version, ...): "
        f"run python .ci/strip_notebooks.py {path.relative_to(ROOT)}"
    )


def test_strip_removes_what_changes_between_runs_and_keeps_outputs():
    output = {"output_type": "execute_result", "execution_count": 3, "data": {"text/plain": ["2"]}, "metadata": {}}
    notebook = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": 3,
                "id": "a1",
                "metadata": {"execution": {"iopub.status.idle": "2026-01-01T00:00:00Z"}, "tags": ["keep"]},
                "outputs": [output],
                "source": ["1 + 1"],
            }
        ],
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "language_info": {"name": "python", "version": "3.11.7"},
            "widgets": {"state": {}},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    stripped = strip_notebooks.strip(notebook)
    cell = stripped["cells"][0]
    assert cell["execution_count"] is None and cell["metadata"] == {"tags": ["keep"]} and cell["id"] == "a1"
    assert cell["outputs"] == [{**output, "execution_count": None}]
    assert stripped["metadata"] == {
        "kernelspec": notebook["metadata"]["kernelspec"],
        "language_info": {"name": "python"},
    }
    assert strip_notebooks.strip(stripped) == stripped
