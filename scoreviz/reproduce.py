"""`scoreviz reproduce`: run the notebooks with papermill, cache finished runs by hash, write a report.

Each notebook runs in its own papermill process with PROFILE, DEVICE, DATA_ROOT, OUT_DIR and the --param values
its parameters cell declares injected; the console gets one line per notebook, the papermill log goes to
<out>/logs/<notebook>.log. Ctrl-C, SIGTERM and SIGHUP stop the papermill processes and remove their partial
folders; a SIGKILLed `scoreviz reproduce` takes them down too (Linux) and the next run removes what they left.
A finished run is stored under <cache>/<notebook>-<hash>/ (executed notebook, figures, CSV tables,
result.json), the hash covering the notebook, the injected parameters and the scoreviz sources, so a
rerun after an interruption or with nothing changed skips it. The run folder gets a copy of every
notebook's entry and report.md / report.html: tables (the notebooks write paper-vs-measured CSVs),
figures, and the machine, versions, profile, seeds and wall times.
"""
from __future__ import annotations

import ctypes
import datetime
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import mistune
import pandas as pd
import papermill as pm

from . import configs
from .claims import collect as collect_claims, markdown_table
from .machine import machine_info, process_alive

__all__ = ["DATASET_INFO", "check_paper_data", "check_params", "parse_value", "run", "write_report"]

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


def parse_value(value: str):
    """papermill's `-p NAME VALUE` rule: True, False, None, an int, a float, else the string itself."""
    if value in ("True", "False", "None"):
        return {"True": True, "False": False, "None": None}[value]
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def check_params(books: list[Path], names) -> None:
    """Stop before anything runs if a --param name is declared by none of the chosen notebooks' parameters cells."""
    if not names:
        return
    declared = set().union(*(pm.inspect_notebook(str(b)) for b in books))
    unknown = [n for n in names if n not in declared]
    if unknown:
        raise SystemExit(f"unknown --param {', '.join(unknown)}: no chosen notebook declares it; valid names: "
                         f"{', '.join(sorted(declared))}")


def _source_hash() -> str:
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


_RUNNING: set = set()  # papermill processes in flight, stopped on Ctrl-C / SIGTERM / SIGHUP
_PRCTL = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None  # resolved here, not after fork


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL when the thread that started it ends, even by SIGKILL (Linux only).
    The kernel papermill starts exits by itself when papermill is gone (ipykernel watches its parent)."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _remove_stale_partials(cache: Path) -> None:
    """Remove the <entry>.partial-<pid> folders of runs whose process is gone (killed before it could clean up)."""
    for p in cache.glob("*.partial*"):
        pid = p.name.rpartition("-")[2]
        if not pid.isdigit() or not process_alive(int(pid)):
            shutil.rmtree(p, ignore_errors=True)


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


def _execute(book: Path, entry: Path, params: dict, log: Path) -> dict:
    """Run one notebook into entry.partial-<pid>/, then rename it to entry; papermill's stdout and stderr go to
    log; returns result.json's content."""
    partial = entry.with_name(f"{entry.name}.partial-{os.getpid()}")  # never shared with another run
    shutil.rmtree(partial, ignore_errors=True)
    (partial / "outputs").mkdir(parents=True)
    params = {**params, "OUT_DIR": str((entry / "outputs").resolve())}
    run_params = {**params, "OUT_DIR": str((partial / "outputs").resolve())}
    cmd = [sys.executable, "-m", "papermill", str(book), str(partial / book.name), "--cwd", str(book.parent),
           "-y", json.dumps(run_params), "--kernel", "python3", "--no-progress-bar", "--log-output"]
    t0 = time.time()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=_die_with_parent)
        _RUNNING.add(proc)
        try:
            proc.wait()
        finally:
            _RUNNING.discard(proc)
    result = {"notebook": book.stem, "ok": proc.returncode == 0, "wall_s": round(time.time() - t0, 1),
              "finished": datetime.datetime.now().isoformat(timespec="seconds"), "params": params}
    if proc.returncode:
        result["error"] = _error_cell(partial / book.name)
        shutil.rmtree(partial, ignore_errors=True)
        return result
    (partial / "result.json").write_text(json.dumps(result, indent=1))
    if (entry / "result.json").is_file():  # another run finished the same notebook meanwhile: keep that one
        shutil.rmtree(partial, ignore_errors=True)
    else:
        shutil.rmtree(entry, ignore_errors=True)
        os.replace(partial, entry)
    return result


def _tail(log: Path, n: int = 6) -> str:
    lines = [l for l in log.read_text(errors="replace").splitlines() if l.strip()]
    return "\n".join("      | " + l for l in lines[-n:])


def run(books: list[Path], out: Path, params: dict, *, cache: Path, jobs: int = 1,
        refresh_figures: Path | None = None) -> int:
    """Run (or reuse) every notebook, copy results into out/, write the report; returns the exit code."""
    (out / "logs").mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    _remove_stale_partials(cache)
    # inject only what each notebook's parameters cell declares
    book_params = {b: {k: v for k, v in params.items() if k in pm.inspect_notebook(str(b))} for b in books}
    keys = {b: _key(b, book_params[b]) for b in books}
    results, t_start, stopping = {}, time.time(), threading.Event()
    width = max(len(b.stem) for b in books)

    def one(i_book):  # one console line per notebook: name, status, seconds (and where to look on failure)
        i, book = i_book
        entry, log = cache / keys[book], out / "logs" / f"{book.stem}.log"
        tag = f"[{i}/{len(books)}] {book.stem:<{width}}"
        if (entry / "result.json").is_file():
            res = json.loads((entry / "result.json").read_text())
            print(f"{tag} cached  (run of {res['finished']}, {res['wall_s']:.0f} s)", flush=True)
            return book, res
        if stopping.is_set():
            return book, None
        if jobs == 1:  # the line is finished when the notebook is
            print(tag, end="", flush=True)
        res = _execute(book, entry, book_params[book], log)
        status = "ok" if res["ok"] else "stopped" if stopping.is_set() else "failed"
        line = f"{'' if jobs == 1 else tag} {status:<7} {res['wall_s']:.0f} s"
        if status == "failed":
            line += f"  {res['error']}\n      log: {log}\n{_tail(log)}"
        print(line, flush=True)
        return book, res

    def on_signal(*_):
        raise KeyboardInterrupt

    stops = [s for s in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]
    previous = {s: signal.signal(s, on_signal) for s in stops}
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        for book, res in pool.map(one, enumerate(books, 1)):
            results[book.stem] = res
            if res["ok"]:
                shutil.copytree(cache / keys[book], out / book.stem, dirs_exist_ok=True)
    except KeyboardInterrupt:  # stop what runs (its partial folder is removed), skip what has not started
        stopping.set()
        pool.shutdown(wait=False, cancel_futures=True)
        _stop_running()
        pool.shutdown(wait=True)
        write_report(out, books, results, params, time.time() - t_start, interrupted=True)
        print(f"\ninterrupted: {sum(r['ok'] for r in results.values())} notebook(s) finished and cached; "
              "run the same command again to continue", flush=True)  # last: after SIGHUP the terminal may be gone
        return 130
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        pool.shutdown(wait=True)
    if refresh_figures is not None:
        refresh_figures.mkdir(parents=True, exist_ok=True)
        for f in sorted(out.glob("*/outputs/*")):
            if f.suffix in (".png", ".pdf", ".csv"):
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
             + (" (interrupted: incomplete)" if interrupted else "")]
    claims = collect_claims(out)
    if len(claims):
        lines += ["", "## All claims", "", "One row per claim of every notebook run (`<notebook>_claims.csv`; each "
                  "notebook computes its statuses from its own numbers).", "", markdown_table(claims)]
    lines += ["", "| machine / version | |", "|---|---|"] + [f"| {k} | {v} |" for k, v in info.items()]
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
