import pytest

from scoreviz.cli import find_notebooks, main


def test_paper_profile_without_data_fails_at_once(tmp_path):
    (tmp_path / "05_spr_benchmark.ipynb").write_text("{}")
    with pytest.raises(SystemExit) as e:
        main(["reproduce", "--profile", "paper", "--notebooks", str(tmp_path)])
    msg = str(e.value)
    assert "--data-root <not given>" in msg and "MVTec AD for 05_spr_benchmark" in msg and "BTAD" in msg
    assert "DATA_ROOT/mvtec/<category>/" in msg and "mvtec.com" in msg
    (tmp_path / "data" / "mvtec").mkdir(parents=True)
    with pytest.raises(SystemExit) as e:  # MVTec there, BTAD and MPDD still missing
        main(["reproduce", "--profile", "paper", "--notebooks", str(tmp_path), "--data-root", str(tmp_path / "data")])
    assert "MVTec AD" not in str(e.value) and "MPDD" in str(e.value)


def test_unknown_notebook_lists_valid_names(tmp_path):
    for name in ("01_alpha.ipynb", "02_beta.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in find_notebooks(tmp_path, ["02"])] == ["02_beta.ipynb"]
    assert [p.name for p in find_notebooks(tmp_path, ["alpha"])] == ["01_alpha.ipynb"]
    with pytest.raises(SystemExit, match="valid names: 01_alpha, 02_beta"):
        main(["reproduce", "--notebooks", str(tmp_path), "--only", "gamma"])
    with pytest.raises(SystemExit, match="no notebooks"):
        find_notebooks(tmp_path / "empty")


def test_data_commands_report_errors(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        main(["data-summary", str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="error:"):
        main(["prepare-visa", str(tmp_path), str(tmp_path / "out")])


def test_data_summary(capsys, hazelnut):
    assert main(["data-summary", str(hazelnut)]) == 0
    out = capsys.readouterr().out
    assert "train: good 28" in out and "colour 17" in out


def test_train_command_single_process_and_under_torchrun(tmp_path):
    """`scoreviz train` trains and checkpoints, alone and under torchrun (2 CPU processes, gloo backend)."""
    import os
    import subprocess
    import sys

    from scoreviz.train import load_checkpoint

    args = ["train", "--dataset", "textures", "--category", "brick", "--size", "16", "--preset", "tiny",
            "--set", "epochs=2", "--set", "batch_size=8", "--no-progress"]
    assert main(args + ["--out", str(tmp_path / "single")]) == 0
    single = load_checkpoint(tmp_path / "single" / "checkpoint.pt")
    assert single["epoch"] == 2 and len(single["history"]) == 2
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "scoreviz.cli"] + args + ["--out", str(tmp_path / "ddp")]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "2 process(es)" in done.stdout
    ddp = load_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert ddp["epoch"] == 2 and all(map(lambda v: v == v, ddp["history"]))
    with pytest.raises(SystemExit, match="KEY one of: amp, batch_size"):
        main(args[:-5] + ["--set", "epoch=3", "--out", str(tmp_path / "x")])
