import pytest

from scoreviz.cli import find_notebooks, main


def fails(args, capsys, code: int = 1) -> str:
    """Run the CLI on args, expect exit code `code` and one `error:` message without a traceback; return it."""
    assert main(args) == code
    err = capsys.readouterr().err
    assert err.startswith("error:" if code == 1 else "interrupted:") and "Traceback" not in err, err
    return err


def test_paper_profile_without_data_fails_at_once(tmp_path, capsys):
    (tmp_path / "05_spr_benchmark.ipynb").write_text("{}")
    msg = fails(["reproduce", "--profile", "paper", "--notebooks", str(tmp_path)], capsys)
    assert "--data-root <not given>" in msg and "MVTec AD for 05_spr_benchmark" in msg and "BTAD" in msg
    assert "DATA_ROOT/mvtec/<category>/" in msg and "mvtec.com" in msg
    (tmp_path / "data" / "mvtec").mkdir(parents=True)
    msg = fails(["reproduce", "--profile", "paper", "--notebooks", str(tmp_path), "--data-root",
                 str(tmp_path / "data")], capsys)  # MVTec there, BTAD and MPDD still missing
    assert "MVTec AD" not in msg and "MPDD" in msg


def test_unknown_notebook_lists_valid_names(tmp_path, capsys):
    for name in ("01_alpha.ipynb", "02_beta.ipynb"):
        (tmp_path / name).write_text("{}")
    assert [p.name for p in find_notebooks(tmp_path, ["02"])] == ["02_beta.ipynb"]
    assert [p.name for p in find_notebooks(tmp_path, ["alpha"])] == ["01_alpha.ipynb"]
    assert "valid names: 01_alpha, 02_beta" in fails(["reproduce", "--notebooks", str(tmp_path), "--only", "gamma"],
                                                      capsys)
    with pytest.raises(SystemExit, match="no notebooks"):
        find_notebooks(tmp_path / "empty")


def test_data_commands_report_errors(tmp_path, capsys):
    assert "does not exist" in fails(["data-summary", str(tmp_path / "nope")], capsys)
    fails(["prepare-visa", str(tmp_path), str(tmp_path / "out")], capsys)


def test_data_summary_exits_non_zero_on_problems(tmp_path, capsys, mvtec):
    """#16.5: a truncated PNG was reported as 'problems: none' and the command exited 0."""
    assert main(["data-summary", str(mvtec)]) == 0
    png = mvtec / "bottle" / "train" / "good" / "000.png"
    png.write_bytes(png.read_bytes()[:60])
    assert main(["data-summary", str(mvtec)]) == 1
    out, err = capsys.readouterr()
    assert "unreadable image bottle/train/good/000.png" in out
    assert err.splitlines()[-1].split("\r")[-1].startswith("error: 1 problem(s)")


def test_errors_are_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    args = ["train", "--dataset", "folder", "--root", str(tmp_path / "absent"), "--out", str(tmp_path / "o")]
    msg = fails(args, capsys)
    assert msg.count("\n") == 1 and str(tmp_path / "absent") in msg
    with pytest.raises(Exception):
        main(["--debug"] + args)


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
    assert main(args[:-5] + ["--set", "epoch=3", "--out", str(tmp_path / "x")]) == 1
