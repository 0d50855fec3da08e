"""The notebooks in ``notebooks/`` execute top to bottom on small generated data."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def execute(name: str, cwd: Path) -> nbformat.NotebookNode:
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return book


def outputs_text(book: nbformat.NotebookNode) -> str:
    chunks = []
    for cell in book.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                chunks.append(output.get("text", ""))
            elif "data" in output:
                chunks.append(str(output["data"].get("text/plain", "")) + "\n")
    return "".join(chunks)


@pytest.mark.slow
def test_quickstart_then_registry_notebook(tmp_path, monkeypatch):
    work = tmp_path / "work"
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("NEXUS_NB_WORKDIR", str(work))
    monkeypatch.setenv("NEXUS_NB_IMAGES", "40")
    monkeypatch.setenv("NEXUS_NB_IMGSZ", "64")
    monkeypatch.setenv("NEXUS_NB_EPOCHS", "2")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    quickstart = execute("quickstart.ipynb", tmp_path)
    text = outputs_text(quickstart)
    assert "mAP50" in text and "drift detected" in text
    assert (work / "export" / "model.onnx").is_file()
    assert (work / "drift" / "drift_report.html").is_file()

    registry = execute("registry.ipynb", tmp_path)
    text = outputs_text(registry)
    assert "canary: 1 2 20.0" in text and "rolled back to: 1 1" in text
    assert "'dataset_dvc_hash': '" in text and ".dir'" in text


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebooks_are_checked_in_without_outputs(name):
    book = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(book)
    assert all(not cell.get("outputs") for cell in book.cells if cell.cell_type == "code")
