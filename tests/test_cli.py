from pathlib import Path

import pytest

from scoreviz.cli import find_notebooks, main

HAZELNUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hazelnut_toy"


def test_paper_profile_without_data_root_fails_at_once():
    with pytest.raises(SystemExit, match="--data-root"):
        main(["reproduce", "--profile", "paper"])


def test_unknown_notebook_lists_valid_names(tmp_path):
    for name in ("01_alpha.ipynb", "02_beta.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in find_notebooks(tmp_path, ["02"])] == ["02_beta.ipynb"]
    assert [p.name for p in find_notebooks(tmp_path, ["alpha"])] == ["01_alpha.ipynb"]
    with pytest.raises(SystemExit, match="valid names: 01_alpha, 02_beta"):
        main(["reproduce", "--notebooks", str(tmp_path), "--only", "gamma"])
    with pytest.raises(SystemExit, match="no notebooks"):
        find_notebooks(tmp_path / "empty")


def test_data_summary_and_errors(capsys, tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["data-summary", str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="error:"):
        main(["prepare-visa", str(tmp_path), str(tmp_path / "out")])
    if not HAZELNUT.is_dir():
        pytest.skip(f"shared dataset not found at {HAZELNUT}")
    assert main(["data-summary", str(HAZELNUT)]) == 0
    out = capsys.readouterr().out
    assert "train: good 28" in out and "colour 17" in out
