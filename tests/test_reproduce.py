"""scoreviz reproduce on tiny throw-away notebooks: caching, failures, report, interruption."""
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

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
         "print(PROFILE)")
BLOCK = "import os, time\nwhile os.path.exists(os.environ.get('SV_BLOCK', '/nonexistent')):\n    time.sleep(0.2)"


@pytest.mark.timeout(300)
def test_reproduce_caches_reports_and_survives_failures(tmp_path, capsys):
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(books / "01_ok.ipynb", TABLE)
    _notebook(books / "02_fails.ipynb", "raise RuntimeError('boom')")
    rc = main(["reproduce", "--notebooks", str(books), "--out", str(tmp_path / "runs" / "a"), "--device", "cpu"])
    out = capsys.readouterr().out
    assert rc == 1 and "1 passed, 1 failed" in out
    assert "RuntimeError: boom" in out and "cell 2" in out
    report = (tmp_path / "runs" / "a" / "report.md").read_text()
    assert "| 01_ok | ok |" in report and "FAILED: cell 2" in report and "| a | 0.9 | 0.8 |" in report
    assert "| torch |" in report and (tmp_path / "runs" / "a" / "report.html").is_file()
    # second run: the finished notebook is reused, the failing one is retried
    rc = main(["reproduce", "--notebooks", str(books), "--out", str(tmp_path / "runs" / "b"), "--only", "01"])
    out = capsys.readouterr().out
    assert rc == 0 and "reused" in out
    assert (tmp_path / "runs" / "b" / "01_ok" / "outputs" / "t.csv").is_file()


@pytest.mark.timeout(300)
def test_interrupted_reproduce_resumes_without_rerunning(tmp_path):
    books = tmp_path / "nb"
    books.mkdir()
    _notebook(books / "01_fast.ipynb", TABLE)
    _notebook(books / "02_slow.ipynb", BLOCK)
    block = tmp_path / "block"
    block.touch()
    env = {**os.environ, "SV_BLOCK": str(block)}
    cmd = [sys.executable, "-m", "scoreviz.cli", "reproduce", "--notebooks", str(books), "--device", "cpu"]
    proc = subprocess.Popen(cmd + ["--out", str(tmp_path / "runs" / "first")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    cache = tmp_path / "runs" / ".cache"
    deadline = time.time() + 120
    while not list(cache.glob("01_fast-*/result.json")) or not list(cache.glob("02_slow-*.partial")):
        assert time.time() < deadline and proc.poll() is None, "01 did not finish in time"
        time.sleep(0.3)
    time.sleep(2)  # 02 is now inside its blocking cell
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "interrupted" in out
    assert not list(cache.glob("*.partial"))  # nothing half-written stays
    assert "interrupted: incomplete" in (tmp_path / "runs" / "first" / "report.md").read_text()
    block.unlink()
    done = subprocess.run(cmd + ["--out", str(tmp_path / "runs" / "second")], env=env, capture_output=True,
                          text=True, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "01_fast: unchanged" in done.stdout and "02_slow: running" in done.stdout
    report = (tmp_path / "runs" / "second" / "report.md").read_text()
    assert "| 01_fast | ok |" in report and "| 02_slow | ok |" in report
