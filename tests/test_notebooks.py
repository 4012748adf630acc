"""The tutorial notebooks as committed: small, executed, switchable to quick settings, linked from the README.

Executing them is ``make notebooks`` (``pytest --nbmake tutorials/*.ipynb``, minutes); these checks read the
files only, so they belong to the fast default test run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "tutorials").glob("*.ipynb"))
MAX_BYTES = 300_000  # outputs stay small enough to read on GitHub


def _cells(path: Path) -> list[dict]:
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4, f"{path.name}: nbformat {notebook['nbformat']}, expected 4"
    return notebook["cells"]


def _text(value: str | list[str]) -> str:
    return value if isinstance(value, str) else "".join(value)


def test_the_tutorials_exist() -> None:
    names = [p.name for p in NOTEBOOKS]
    assert len(names) >= 5, names
    for prefix in ("01_", "02_", "03_", "04_", "05_"):
        assert any(name.startswith(prefix) for name in names), f"no tutorial {prefix}*.ipynb in {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_small_and_executed_in_order(path: Path) -> None:
    assert path.stat().st_size < MAX_BYTES, f"{path.name} is {path.stat().st_size} bytes; strip large outputs"
    code = [cell for cell in _cells(path) if cell["cell_type"] == "code"]
    counts = [cell["execution_count"] for cell in code]
    assert all(isinstance(c, int) for c in counts), f"{path.name}: cells without execution count {counts}"
    assert counts == list(range(1, len(code) + 1)), f"{path.name}: not run top to bottom once: {counts}"
    for cell in code:
        for output in cell.get("outputs", []):
            assert output["output_type"] != "error", f"{path.name}: committed with an error output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_reads_the_switches(path: Path) -> None:
    first = next(_text(cell["source"]) for cell in _cells(path) if cell["cell_type"] == "code")
    assert "MONAI_IMBALANCE_TUTORIAL_QUICK" in first, f"{path.name}: the quick switch is not in the first code cell"
    assert "MONAI_IMBALANCE_DATA" in first, f"{path.name}: the data folder is not read in the first code cell"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outputs_name_no_machine_paths(path: Path) -> None:
    for cell in _cells(path):
        for output in cell.get("outputs", []):
            text = _text(output.get("text", "")) + _text(output.get("data", {}).get("text/plain", ""))
            for fragment in ("/work/", "/tmp/", "/home/"):
                assert fragment not in text, f"{path.name}: an output names a path of this machine ({fragment})"


def test_readme_links_every_notebook() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for path in NOTEBOOKS:
        assert f"tutorials/{path.name}" in readme, f"README.md does not link {path.name}"


NEEDED_FILE = {  # the data file each notebook reads (01, 04 and 05 download DermaMNIST when it is missing)
    "01": "medmnist/dermamnist.npz",
    "02": "knee_kl/knee_kl_64_trainval.npz",
    "03": "dsb2018/dsb2018_256.npz",
    "04": "medmnist/dermamnist.npz",
    "05": "medmnist/dermamnist.npz",
}


def _run_first_cell(path: Path, cwd: Path, data: Path | None) -> subprocess.CompletedProcess:
    first = next(_text(cell["source"]) for cell in _cells(path) if cell["cell_type"] == "code")
    env = {key: value for key, value in os.environ.items() if key != "MONAI_IMBALANCE_DATA"}
    if data is not None:
        env["MONAI_IMBALANCE_DATA"] = str(data)
    return subprocess.run([sys.executable, "-c", first], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_outside_a_checkout_the_first_cell_says_what_it_needs_and_where_it_looks(path: Path, tmp_path: Path) -> None:
    """Issue 19: outside a repository checkout the first cell failed with a bare StopIteration, even with
    MONAI_IMBALANCE_DATA set."""
    needed = NEEDED_FILE[path.name[:2]]
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    result = _run_first_cell(path, outside, data=None)
    assert result.returncode != 0 and "StopIteration" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("RuntimeError: ") and "MONAI_IMBALANCE_DATA" in last and needed in last, last

    data = tmp_path / "data"
    if path.name[:2] in ("02", "03"):  # these read a file of their own: its absence is named
        result = _run_first_cell(path, outside, data=data)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("FileNotFoundError: ") and str(data / needed) in last and needed in last, last
    (data / needed).parent.mkdir(parents=True)
    (data / needed).write_bytes(b"")
    result = _run_first_cell(path, outside, data=data)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
