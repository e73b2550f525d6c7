"""scoreviz reproduce on tiny throw-away notebooks: caching, failures, report, interruption, parameters, console."""
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from scoreviz import reproduce
from scoreviz.cli import main


def _notebook(path, body, params="PROFILE = 'cpu'\nSEED = 0\nOUT_DIR = '.'"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# test"), cell, nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


TABLE = ("import pathlib, pandas as pd\n"
         "pd.DataFrame({'category': ['a'], 'paper': [0.9], 'measured': [0.8]}).to_csv(pathlib.Path(OUT_DIR) / 't.csv', index=False)\n"
         "from scoreviz.claims import Claims\n"
         "c = Claims('01_ok', PROFILE)\n"
         "c.verdict('x', 'a | b', 'Fig. 1', 'picture', '0.8', holds=False, reason='measured 0.8')\n"
         "c.finish(OUT_DIR)\n"
         "print(PROFILE)")
BLOCK = "import os, time\nwhile os.path.exists(os.environ.get('SV_BLOCK', '/nonexistent')):\n    time.sleep(0.2)"
# writes the kernel's and papermill's pids to $SV_PIDS, then blocks until $SV_BLOCK is gone
PIDS_BLOCK = "import os\nopen(os.environ['SV_PIDS'], 'w').write(f'{os.getpid()} {os.getppid()}')\n" + BLOCK
CLI = [sys.executable, "-m", "scoreviz.cli", "reproduce", "--device", "cpu"]


def _alive(pid):
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie is gone
    except OSError:
        return False


def _start_blocked(tmp_path, name="01_slow"):
    """`scoreviz reproduce` in a subprocess on one notebook that blocks; returns (proc, [kernel pid, papermill pid])."""
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(books / f"{name}.ipynb", PIDS_BLOCK)
    (tmp_path / "block").touch()
    env = {**os.environ, "SV_BLOCK": str(tmp_path / "block"), "SV_PIDS": str(tmp_path / "pids")}
    proc = subprocess.Popen(CLI + ["--notebooks", str(books), "--out", str(tmp_path / "runs" / "a")], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 60
    while not (tmp_path / "pids").is_file() or not (tmp_path / "pids").read_text():
        assert time.time() < deadline and proc.poll() is None, "the notebook did not start"
        time.sleep(0.2)
    return proc, [int(p) for p in (tmp_path / "pids").read_text().split()]


@pytest.mark.timeout(300)
def test_reproduce_caches_reports_and_survives_failures(tmp_path, capfd):
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(books / "01_ok.ipynb", TABLE)
    _notebook(books / "02_fails.ipynb", "raise RuntimeError('boom')")
    rc = main(["reproduce", "--notebooks", str(books), "--out", str(tmp_path / "runs" / "a"), "--device", "cpu"])
    out, err = capfd.readouterr()
    assert rc == 1 and "1 passed, 1 failed" in out
    assert "RuntimeError: boom" in out and "cell 2" in out
    report = (tmp_path / "runs" / "a" / "report.md").read_text()
    assert "| 01_ok | ok |" in report and "FAILED: cell 2" in report and "| a | 0.9 | 0.8 |" in report
    assert "| torch |" in report and (tmp_path / "runs" / "a" / "report.html").is_file()
    # the report opens with every notebook's claims
    assert report.index("## All claims") < report.index("| machine / version |")
    assert "| 01_ok | a \\| b (Fig. 1) | picture | 0.8 | **not reproduced** | measured 0.8 |" in report
    # quiet console: one line per notebook, papermill's own output only in the logs
    assert "[1/2] 01_ok    ok " in out and "[2/2] 02_fails failed " in out
    assert "Executing" not in out + err and "papermill" not in err
    log = tmp_path / "runs" / "a" / "logs" / "02_fails.log"
    assert f"log: {log}" in out and "boom" in log.read_text() and "Executing" in log.read_text()
    assert "Executing" in (tmp_path / "runs" / "a" / "logs" / "01_ok.log").read_text()
    # second run: the finished notebook is reused, the failing one is retried
    rc = main(["reproduce", "--notebooks", str(books), "--out", str(tmp_path / "runs" / "b"), "--only", "01",
               "--refresh-figures"])
    out = capfd.readouterr().out
    assert rc == 0 and "[1/1] 01_ok cached" in out
    outputs = tmp_path / "runs" / "b" / "01_ok" / "outputs"
    # --refresh-figures copies the tables too, byte for byte
    for name in ("t.csv", "01_ok_claims.csv"):
        assert (tmp_path / "figures" / name).read_bytes() == (outputs / name).read_bytes()


def test_param_values_are_parsed_like_papermill_p():
    from papermill.cli import _resolve_type          # papermill's own rule, the reference

    values = ("1", "-2", "1e-3", "0.5", "True", "False", "None", "/w", "abc", "", "1.0")
    assert [reproduce.parse_value(v) for v in values] == [1, -2, 1e-3, 0.5, True, False, None, "/w", "abc", "", 1.0]
    assert [(reproduce.parse_value(v), type(reproduce.parse_value(v))) for v in values] == \
        [(_resolve_type(v), type(_resolve_type(v))) for v in values]


@pytest.mark.timeout(300)
def test_params_are_typed_and_unknown_names_refused(tmp_path, capsys):
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(books / "01_typed.ipynb", "assert (SEED, RATE, FLAG, NAME) == (1, 1e-3, True, 'abc'), (SEED, RATE)\n"
              "assert type(SEED) is int and CHECKPOINTS is None",
              params="SEED = 0\nRATE = 0.1\nFLAG = False\nNAME = 'x'\nCHECKPOINTS = '/c'\nOUT_DIR = '.'")
    _notebook(books / "02_plain.ipynb", "assert SEED == 1 and 'RATE' not in globals()")  # gets only what it declares
    args = ["reproduce", "--notebooks", str(books), "--out", str(tmp_path / "runs" / "a"), "--device", "cpu",
            "--param", "SEED=1", "--param", "RATE=1e-3", "--param", "FLAG=True", "--param", "NAME=abc"]
    assert main(args + ["--param", "CHECKPOINTS=None"]) == 0, capsys.readouterr().out
    capsys.readouterr()
    # a typo of CHECKPOINTS: refused before anything runs
    assert main(args + ["--param", "CHECKPOINT=/w"] + ["--out", str(tmp_path / "runs" / "b")]) == 1
    msg = capsys.readouterr().err
    assert "unknown --param CHECKPOINT:" in msg and "CHECKPOINTS, FLAG, NAME, OUT_DIR, PROFILE, RATE, SEED" in msg
    assert not (tmp_path / "runs" / "b").exists()


@pytest.mark.timeout(300)
def test_jobs_runs_notebooks_side_by_side_and_warns_on_too_few_cores(tmp_path, capsys, monkeypatch):
    books = tmp_path / "nb"
    books.mkdir()
    flag = tmp_path / "second_started"
    # 01 finishes only once 02 has started: with one job at a time it would time out and fail
    _notebook(books / "01_waits.ipynb", "import os, time\nt = time.time() + 60\n"
              f"while not os.path.exists({str(flag)!r}):\n    assert time.time() < t, 'ran alone'\n    time.sleep(0.2)")
    _notebook(books / "02_starts.ipynb", f"open({str(flag)!r}, 'w').close()")
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    args = ["reproduce", "--notebooks", str(books), "--device", "cpu"]
    assert main(args + ["--out", str(tmp_path / "runs" / "a"), "--jobs", "2"]) == 0
    out, err = capsys.readouterr()
    assert re.search(r"\[1/2\] 01_waits +ok", out) and re.search(r"\[2/2\] 02_starts +ok", out), out
    assert "2 passed, 0 failed" in out
    assert "warning: --jobs 2 on 2 CPU cores" in err and "--jobs 1" in err
    assert (tmp_path / "runs" / "a" / "01_waits" / "01_waits.ipynb").is_file()
    assert main(args + ["--out", str(tmp_path / "runs" / "b"), "--jobs", "0"]) == 1
    assert "--jobs takes a number of notebooks >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "b").exists()


@pytest.mark.timeout(120)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sighup_stops_the_notebook_and_removes_its_partial_folder(tmp_path):
    proc, pids = _start_blocked(tmp_path)
    cache = tmp_path / "runs" / ".cache"
    assert list(cache.glob(f"01_slow-*.partial-{proc.pid}"))  # the partial folder belongs to this run
    proc.send_signal(signal.SIGHUP)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "interrupted" in out and "01_slow stopped" in out, out
    deadline = time.time() + 10
    while any(map(_alive, pids)) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, pids)), "papermill or its kernel still runs"
    assert not list(cache.glob("*.partial*"))


@pytest.mark.timeout(120)
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc")
def test_sigkill_of_reproduce_takes_the_notebook_down_and_its_partial_is_cleaned_later(tmp_path):
    proc, pids = _start_blocked(tmp_path)
    proc.kill()
    proc.communicate(timeout=30)
    deadline = time.time() + 10
    while any(map(_alive, pids)) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(map(_alive, pids)), "papermill or its kernel outlived a SIGKILLed scoreviz reproduce"
    cache = tmp_path / "runs" / ".cache"
    stale = list(cache.glob(f"*.partial-{proc.pid}"))
    mine = cache / f"01_slow-0.partial-{os.getpid()}"  # a run that is still alive keeps its folder
    mine.mkdir()
    assert stale
    reproduce._remove_stale_partials(cache)
    assert not any(p.exists() for p in stale) and mine.is_dir()


@pytest.mark.timeout(300)
def test_interrupted_reproduce_resumes_without_rerunning(tmp_path):
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(books / "01_fast.ipynb", TABLE)
    _notebook(books / "02_slow.ipynb", BLOCK)
    block = tmp_path / "block"
    block.touch()
    env = {**os.environ, "SV_BLOCK": str(block)}
    cmd = CLI + ["--notebooks", str(books)]
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "runs" / "first")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    cache = tmp_path / "runs" / ".cache"
    deadline = time.time() + 120
    while not list(cache.glob("01_fast-*/result.json")) or not list(cache.glob("02_slow-*.partial*")):
        assert time.time() < deadline and proc.poll() is None, "01 did not finish in time"
        time.sleep(0.3)
    time.sleep(2)  # 02 is now inside its blocking cell
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in out
    assert not list(cache.glob("*.partial*"))  # nothing half-written stays
    assert "interrupted: incomplete" in (tmp_path / "runs" / "first" / "report.md").read_text()
    block.unlink()
    done = subprocess.run(cmd + ["--out", str(tmp_path / "runs" / "second")], env=env, capture_output=True,
                          text=True, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "01_fast cached" in done.stdout and "02_slow ok" in done.stdout
    report = (tmp_path / "runs" / "second" / "report.md").read_text()
    assert "| 01_fast | ok |" in report and "| 02_slow | ok |" in report
