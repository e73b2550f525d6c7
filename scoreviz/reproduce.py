"""`scoreviz reproduce`: run the notebooks with papermill, cache finished runs by hash, write a report.

Each notebook runs in its own papermill process with PROFILE, DEVICE, DATA_ROOT and OUT_DIR injected.
A finished run is stored under <cache>/<notebook>-<hash>/ (executed notebook, figures, CSV tables,
result.json), the hash covering the notebook, the injected parameters and the scoreviz sources, so a
rerun after an interruption or with nothing changed skips it. The run folder gets a copy of every
notebook's entry and report.md / report.html: tables (the notebooks write paper-vs-measured CSVs),
figures, and the machine, versions, profile, seeds and wall times.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mistune
import pandas as pd
import papermill as pm
import torch

from . import __version__, configs

__all__ = ["DATASET_INFO", "check_paper_data", "run", "write_report", "machine_info"]

DATASET_INFO = {
    "mvtec": ("MVTec AD", "https://www.mvtec.com/company/research/datasets/mvtec-ad",
              "DATA_ROOT/mvtec/<category>/{train/good, test/<defect>, ground_truth/<defect>/<stem>_mask.png}"),
    "mpdd": ("MPDD", "https://github.com/stepanje/MPDD", "DATA_ROOT/mpdd/<category>/... (MVTec layout)"),
    "btad": ("BTAD", "https://github.com/pankajmishra000/VT-ADL",
             "DATA_ROOT/btad/{01,02,03}/{train/ok, test/{ok,ko}, ground_truth/ko}"),
    "visa": ("VisA", "https://github.com/amazon-science/spot-diff",
             "DATA_ROOT/visa/<category>/... in MVTec layout: run `scoreviz prepare-visa RAW DATA_ROOT/visa` once"),
    "mnist": ("MNIST", "http://yann.lecun.com/exdb/mnist/",
              "DATA_ROOT/mnist/ with the four idx files (train-images-idx3-ubyte[.gz], ...)"),
}


def check_paper_data(books: list[Path], data_root: str | None) -> None:
    """Stop before anything runs if a dataset the chosen notebooks need is not under data_root."""
    reads = {b.stem: configs.notebook_datasets(b.stem, "paper") if b.stem in configs.NOTEBOOKS else () for b in books}
    needed = sorted({d for b in books for d in reads[b.stem]})
    missing = [d for d in needed if not data_root or not (Path(data_root) / d).is_dir()]
    if not missing:
        return
    lines = [f"the paper profile needs data that is not there (--data-root {data_root or '<not given>'}):"]
    for d in missing:
        name, url, layout = DATASET_INFO[d]
        users = ", ".join(b.stem for b in books if d in reads[b.stem])
        lines.append(f"  - {name} for {users}\n      expected: {layout}\n      download: {url}")
    lines.append("Check a folder with `scoreviz data-summary DIR`; see README.md, 'Datasets'.")
    raise SystemExit("\n".join(lines))


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": f"{cpu} ({os.cpu_count()} cores)", "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available()
            else "none", "python": platform.python_version(), "torch": torch.__version__, "scoreviz": __version__,
            "platform": platform.platform()}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    if commit:
        info["commit"] = commit
    return info


def _source_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


_RUNNING: set = set()  # papermill processes in flight, stopped on Ctrl-C / SIGTERM


def _stop_running():
    for proc in list(_RUNNING):
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


def _key(book: Path, params: dict) -> str:
    h = hashlib.sha256(book.read_bytes())
    h.update(json.dumps(params, sort_keys=True).encode())
    h.update(_source_hash().encode())
    return f"{book.stem}-{h.hexdigest()[:16]}"


def _error_cell(executed: Path) -> str:
    """'cell N: Ename: value' for the first cell of an executed notebook that raised."""
    try:
        nb = json.loads(executed.read_text())
    except (OSError, ValueError):
        return "the notebook did not start"
    added = {"injected-parameters", "papermill-error-cell-tag"}  # cells papermill inserts
    cells = [c for c in nb.get("cells", []) if not added & set(c.get("metadata", {}).get("tags", []))]
    for i, cell in enumerate(cells):  # i counts the cells of the notebook as written, from 0
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error":
                return f"cell {i} (In [{cell.get('execution_count')}]): {out.get('ename')}: {out.get('evalue')}"
    return "no cell error recorded"


def _execute(book: Path, entry: Path, params: dict, progress: bool) -> dict:
    """Run one notebook into entry.partial/, then rename it to entry; returns result.json's content."""
    partial = entry.with_name(entry.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "outputs").mkdir(parents=True)
    params = {**params, "OUT_DIR": str((entry / "outputs").resolve())}
    run_params = {**params, "OUT_DIR": str((partial / "outputs").resolve())}
    cmd = [sys.executable, "-m", "papermill", str(book), str(partial / book.name), "--cwd", str(book.parent),
           "-y", json.dumps(run_params), "--kernel", "python3"] + ([] if progress else ["--no-progress-bar"])
    t0 = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=None if progress else subprocess.PIPE,
                            start_new_session=True)
    _RUNNING.add(proc)
    try:
        proc.communicate()
    finally:
        _RUNNING.discard(proc)
    result = {"notebook": book.stem, "ok": proc.returncode == 0, "wall_s": round(time.time() - t0, 1),
              "finished": datetime.datetime.now().isoformat(timespec="seconds"), "params": params}
    if proc.returncode:
        result["error"] = _error_cell(partial / book.name)
        shutil.rmtree(partial, ignore_errors=True)
        return result
    (partial / "result.json").write_text(json.dumps(result, indent=1))
    shutil.rmtree(entry, ignore_errors=True)
    os.replace(partial, entry)
    return result


def run(books: list[Path], out: Path, params: dict, *, cache: Path, jobs: int = 1,
        refresh_figures: Path | None = None) -> int:
    """Run (or reuse) every notebook, copy results into out/, write the report; returns the exit code."""
    out.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    # inject only what each notebook's parameters cell declares
    book_params = {b: {k: v for k, v in params.items() if k in pm.inspect_notebook(str(b))} for b in books}
    keys = {b: _key(b, book_params[b]) for b in books}
    results, t_start = {}, time.time()

    def one(i_book):
        i, book = i_book
        entry = cache / keys[book]
        tag = f"[{i}/{len(books)}] {book.stem}"
        if (entry / "result.json").is_file():
            print(f"{tag}: unchanged since {json.loads((entry / 'result.json').read_text())['finished']}, reused",
                  flush=True)
            return book, json.loads((entry / "result.json").read_text())
        print(f"{tag}: running ...", flush=True)
        res = _execute(book, entry, book_params[book], progress=jobs == 1)
        print(f"{tag}: {'done' if res['ok'] else 'FAILED'} in {res['wall_s']:.0f} s"
              + ("" if res["ok"] else f"\n    {res['error']}"), flush=True)
        return book, res

    def on_sigterm(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        for book, res in pool.map(one, enumerate(books, 1)):
            results[book.stem] = res
            if res["ok"]:
                shutil.copytree(cache / keys[book], out / book.stem, dirs_exist_ok=True)
    except KeyboardInterrupt:  # stop what runs (its partial folder is removed), skip what has not started
        _stop_running()
        pool.shutdown(wait=True, cancel_futures=True)
        print(f"\ninterrupted: {sum(r['ok'] for r in results.values())} notebook(s) finished and cached; "
              "run the same command again to continue", flush=True)
        write_report(out, books, results, params, time.time() - t_start, interrupted=True)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        pool.shutdown(wait=True)
    if refresh_figures is not None:
        refresh_figures.mkdir(parents=True, exist_ok=True)
        for f in sorted(out.glob("*/outputs/*")):
            if f.suffix in (".png", ".pdf"):
                shutil.copy2(f, refresh_figures / f.name)
    report = write_report(out, books, results, params, time.time() - t_start)
    failed = [k for k, r in results.items() if not r["ok"]]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed; report: {report}")
    return 1 if failed else 0


def _md_table(csv_path: Path, digits: int = 4) -> str:
    df = pd.read_csv(csv_path)
    cells = [[("" if pd.isna(v) else f"{v:.{digits}g}" if isinstance(v, float) else str(v)) for v in row]
             for row in df.itertuples(index=False)]
    head = "| " + " | ".join(map(str, df.columns)) + " |\n|" + "---|" * len(df.columns) + "\n"
    return head + "".join("| " + " | ".join(r) + " |\n" for r in cells)


def write_report(out: Path, books: list[Path], results: dict, params: dict, wall: float,
                 interrupted: bool = False) -> Path:
    """report.md and report.html in out/: status, tables and figures of every notebook, machine and versions."""
    info = machine_info()
    lines = ["# scoreviz reproduction report", "",
             f"{datetime.datetime.now():%Y-%m-%d %H:%M}, profile `{params.get('PROFILE')}`, device "
             f"`{params.get('DEVICE')}`, data root `{params.get('DATA_ROOT', '-')}`, wall time {wall / 60:.1f} min"
             + (" (interrupted: incomplete)" if interrupted else ""), "",
             "| machine / version | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items()]
    lines += ["", "| notebook | status | wall time | seed |", "|---|---|---|---|"]
    for b in books:
        r = results.get(b.stem)
        status = "not run" if r is None else "ok" if r["ok"] else f"FAILED: {r['error']}"
        wall_s = "" if r is None else f"{r['wall_s']:.0f} s"
        lines.append(f"| {b.stem} | {status} | {wall_s} | {_default_seed(b)} |")
    for b in books:
        r = results.get(b.stem)
        if not r or not r["ok"]:
            continue
        lines += ["", f"## {b.stem}", "", f"Executed notebook: [{b.name}]({b.stem}/{b.name})"]
        for csv_path in sorted((out / b.stem / "outputs").glob("*.csv")):
            lines += ["", f"### {csv_path.stem}", "", _md_table(csv_path)]
        for png in sorted((out / b.stem / "outputs").glob("*.png")):
            lines += ["", f"![{png.stem}]({b.stem}/outputs/{png.name})"]
    md = "\n".join(lines) + "\n"
    (out / "report.md").write_text(md)
    html = mistune.html(md)
    (out / "report.html").write_text(
        "<!doctype html><meta charset='utf-8'><title>scoreviz report</title><style>body{font-family:sans-serif;"
        "max-width:1100px;margin:auto}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "img{max-width:100%}</style>\n" + html)
    return out / "report.md"


def _default_seed(book: Path):
    try:
            return pm.inspect_notebook(str(book)).get("SEED", {}).get("default", "-")
    except Exception:
        return "-"
