"""The quickstart notebook runs from top to bottom on the test runs, so it cannot rot."""

from __future__ import annotations

from pathlib import Path

NOTEBOOK = Path(__file__).parents[1] / "examples/notebooks/quickstart.ipynb"


def test_the_quickstart_notebook_executes(tiny_run, series_run, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    monkeypatch.setenv("LAYERDRIFT_RUN", str(tiny_run.store.root))
    monkeypatch.setenv("LAYERDRIFT_RUN_B", str(series_run.store.root))
    nb = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(str(o.get("text", "")) + str(o.get("data", {}).get("text/plain", "")) for o in outputs)
    assert "base→tuned" in text and "measured other concepts" in text  # the pairs, and the comparison's note
