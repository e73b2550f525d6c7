"""Smoke runs of the method notebooks (`scoreviz reproduce --smoke`): every code path, one training epoch.

The notebooks themselves run in full under nbval (cpu profile, embedded data); here they run on a user's own
folder in MVTec layout (DATASET folder), which nbval never exercises.
"""
import json
from pathlib import Path

import pytest

from scoreviz.cli import main
from scoreviz.fixture import make_fixture_root

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
ON_FOLDERS = ["03", "04", "05", "06", "08", "09"]      # 07 reads MNIST only


@pytest.mark.timeout(1200)
def test_method_notebooks_run_on_a_folder(tmp_path, monkeypatch, capsys):
    """#16: every method notebook runs on any MVTec-layout folder (here a generated category of 4 + 4 images)."""
    monkeypatch.setenv("SCOREVIZ_CACHE", str(tmp_path / "models"))
    folder = make_fixture_root(tmp_path / "data", size=48, weights=False) / "mvtec" / "bottle"
    out = tmp_path / "runs" / "folder"
    rc = main(["reproduce", "--smoke", "--notebooks", str(NOTEBOOKS), "--only", *ON_FOLDERS, "--out", str(out),
               "--device", "cpu", "--param", "DATASET=folder", "--param", f"DATA_ROOT={folder}"])
    console = capsys.readouterr().out
    assert rc == 0, console
    assert console.count(" ok ") == len(ON_FOLDERS), console
    for book in sorted(out.glob("[0-9][0-9]_*/*.ipynb")):
        params = json.loads(book.read_text())["metadata"]["papermill"]["parameters"]
        assert params["SMOKE"] is True and params["DATASET"] == "folder", book
    assert (out / "05_spr_benchmark" / "outputs" / "05_results.csv").read_text().count("bottle") >= 3
