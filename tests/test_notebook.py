"""Run notebooks/walkthrough.ipynb top to bottom, so it never rots.

The notebook is executed in a fresh kernel of this interpreter (nbclient + ipykernel), from the
notebooks/ directory as Jupyter would; any cell that raises fails the test, including the
notebook's own asserts (gradient check, falling loss). The notebook is stored with its outputs,
so that it shows its pictures on GitHub; after editing it, store it freshly run with

    python tests/test_notebook.py

(or Kernel > Restart & Run All in Jupyter, then save).
"""

import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "walkthrough.ipynb"
CELL_TIMEOUT_SECONDS = 120


def kernel_manager() -> AsyncKernelManager:
    """A kernel manager whose "python3" kernel is this interpreter (sys.executable).

    With no kernel directories to search, jupyter_client falls back to ipykernel's built-in
    spec, which runs sys.executable; a "python3" kernelspec installed for the user or the system
    (possibly pointing at another Python without this project's packages) is never picked up.
    """
    return AsyncKernelManager(
        kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[])
    )


def execute(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Run every cell in place; raises nbclient's CellExecutionError if one fails."""
    client = NotebookClient(
        notebook,
        km=kernel_manager(),
        timeout=CELL_TIMEOUT_SECONDS,
        record_timing=False,  # no per-cell timestamps in the stored file: cleaner diffs
        resources={"metadata": {"path": str(NOTEBOOK.parent)}},  # the kernel's cwd
    )
    return client.execute()


def code_cells(notebook: nbformat.NotebookNode) -> list:
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def images(notebook: nbformat.NotebookNode) -> list[str]:
    return [
        output["data"]["image/png"]
        for cell in code_cells(notebook)
        for output in cell.outputs
        if "image/png" in output.get("data", {})
    ]


def text_output(notebook: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "") for cell in code_cells(notebook) for output in cell.outputs
    )


@pytest.fixture(scope="module")
def executed() -> nbformat.NotebookNode:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in code_cells(notebook):
        cell.outputs, cell.execution_count = [], None  # prove the outputs are this run's
    return execute(notebook)


def test_the_kernel_is_this_interpreter():
    assert kernel_manager().kernel_spec.argv[0] == sys.executable


def test_notebook_runs_every_cell(executed):
    cells = code_cells(executed)
    assert len(cells) >= 8
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1))
    for cell in cells:
        assert not [output for output in cell.outputs if output.output_type == "error"]


def test_notebook_uses_no_deprecated_name(executed):
    # A learner copies the notebook's code: it shows today's names (num_filters=, training.*),
    # never a deprecated one, whose warning the kernel would print into the cell's output.
    assert "DeprecationWarning" not in text_output(executed)


def test_notebook_shows_the_pictures_inline(executed):
    # The digit, its feature maps (before and after training), the loss curve, the filters.
    assert len(images(executed)) >= 5


def test_notebook_gradient_check_and_training_work(executed):
    text = text_output(executed)
    error = re.search(r"largest relative error: (\S+)", text)
    assert error and float(error.group(1)) < 1e-6
    before = re.search(r"before training: ([\d.]+)%", text)
    after = re.search(r"after \d+ steps: ([\d.]+)%", text)
    assert before and after and float(after.group(1)) > float(before.group(1)) + 30


def test_stored_notebook_is_valid_and_was_run_top_to_bottom():
    """The stored outputs come from one clean run, in order, without errors."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    cells = code_cells(notebook)
    counts = [cell.execution_count for cell in cells]
    assert counts == list(range(1, len(cells) + 1)), (
        f"stored notebook was not run top to bottom (execution counts {counts}); "
        "store it with: python tests/test_notebook.py"
    )
    assert not any(output.output_type == "error" for cell in cells for output in cell.outputs)
    assert len(images(notebook)) >= 5, "stored notebook lacks its pictures"


if __name__ == "__main__":
    # Store the notebook freshly run, outputs included (see the module docstring).
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in code_cells(notebook):
        cell.outputs, cell.execution_count = [], None
    execute(notebook)
    temporary = NOTEBOOK.with_name(f".{NOTEBOOK.name}.tmp")
    nbformat.write(notebook, temporary)
    os.replace(temporary, NOTEBOOK)  # a failed write never leaves a half-written notebook
    print(f"wrote {NOTEBOOK} ({NOTEBOOK.stat().st_size // 1024} KiB)")
