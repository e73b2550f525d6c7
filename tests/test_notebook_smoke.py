"""Smoke runs of the method notebooks (`scoreviz reproduce --smoke`): every code path, one training epoch.

The notebooks themselves run in full under nbval (cpu profile, embedded data); here they run on a user's own
folder in MVTec layout (DATASET folder), which nbval never exercises.
"""
import json
from pathlib import Path

import pandas as pd
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


@pytest.mark.timeout(1800)
def test_paper_profile_smoke_run_on_the_fixture(tmp_path, monkeypatch, capsys):
    """#17: notebook 05 in the paper profile at paper resolution with the paper network, on a generated DATA_ROOT:
    the released-weights path for MVTec AD (a gray category loaded as RGB for the 3-channel weights) and training
    for BTAD (.bmp, ok/ko) and MPDD. The other notebooks' paper smoke runs take 40 s (03), 60 s (04), 220 s (07)
    and 13-36 min (06, 08, 09) on 2 cores, more than CI's budget has left: they are run by hand (README, 'The paper
    profile without a GPU')."""
    monkeypatch.setenv("SCOREVIZ_CACHE", str(tmp_path / "models"))
    root = make_fixture_root(tmp_path / "data", size=64, n_train=2, n_good=1, n_defect=1,
                             categories={"mvtec": ("grid",), "btad": ("01",), "mpdd": ("metal_plate",), "visa": ()})
    out = tmp_path / "runs" / "paper"
    rc = main(["reproduce", "--profile", "paper", "--smoke", "--notebooks", str(NOTEBOOKS), "--only", "05",
               "--out", str(out), "--device", "cpu", "--data-root", str(root),
               "--param", f"CHECKPOINTS={root / 'weights'}"])
    console = capsys.readouterr().out
    assert rc == 0, console
    results = pd.read_csv(out / "05_spr_benchmark" / "outputs" / "05_results.csv")
    assert set(zip(results.dataset, results.category)) == {("mvtec", "grid"), ("btad", "01"), ("mpdd", "metal_plate")}
    trained = sorted((tmp_path / "models").glob("spr-*"))      # BTAD's and MPDD's; MVTec AD's: released weights
    assert len(trained) == 2, trained
    claims = pd.read_csv(out / "05_spr_benchmark" / "outputs" / "05_claims.csv")   # fixture numbers prove nothing
    assert len(claims) and (claims.status == "not run on this profile").all(), claims
