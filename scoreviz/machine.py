"""What machine produced a result: CPU, GPU, versions and commit (for reports, benchmarks and `scoreviz detect`);
whether a process of this machine still runs (stale temporary files and folders of killed runs); result tables
written atomically (a temporary file, then a rename), so a killed run never leaves half a CSV.

Light on purpose (torch and the standard library only), so a GPU machine without the notebook stack can use it.
"""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

from . import __version__

__all__ = ["machine_info", "process_alive"]


def machine_info() -> dict:
    """{'cpu', 'gpu', 'python', 'torch', 'scoreviz', 'platform'[, 'commit']} of this machine and checkout."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": f"{cpu} ({os.cpu_count()} cores)", "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available()
            else "none", "python": platform.python_version(), "torch": torch.__version__, "scoreviz": __version__,
            "platform": platform.platform()}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                                cwd=Path(__file__).parent, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if commit:
        info["commit"] = commit
    return info


def process_alive(pid: int) -> bool:
    """False only when no process `pid` exists; True when it runs, belongs to another user, or cannot be told
    (Windows, where os.kill(pid, 0) would send a CTRL_C_EVENT)."""
    if os.name == "nt":
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):        # e.g. PermissionError: running under another user
        return True
    return True


def atomic_csv(frame, path, **to_csv) -> None:
    """Write a pandas DataFrame to path as CSV (index=False unless given) through a temporary file and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    frame.to_csv(tmp, **{"index": False, **to_csv})
    os.replace(tmp, path)
