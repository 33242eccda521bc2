"""Every researcher notebook executes top to bottom on the tiny world (nbclient), so none can rot."""
from __future__ import annotations

import pytest

from tests.support.repo import REPO

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.integration]


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no .ipynb"


# make test executes one notebook (the quickest, 1.6 min); all of them run in make test-all (`full`)
IN_MAKE_TEST = {"03_ranker"}


@pytest.mark.parametrize("path", [p if p.stem in IN_MAKE_TEST else pytest.param(p, marks=pytest.mark.full)
                                  for p in NOTEBOOKS], ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    # The papermill-style parameters cell: point the notebook at a fresh folder of this test.
    tagged = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected 1"
    tagged[0].source += f"\nWORKDIR = {str(tmp_path)!r}"
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(REPO)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {})
               for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])), "no plot rendered"
