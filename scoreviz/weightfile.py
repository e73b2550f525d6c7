"""Released PyTorch weight files (the authors' SPR checkpoints, torchvision's Wide-ResNets) read as state dicts.

`read_state_dict` is the one place such a file is opened: torch.load with weights_only=True (no pickled code
runs), the usual wrappers removed, and errors that say what file was expected and where to get it. The
loaders that map the names onto our networks are nets.load_official_spr and features.load_wide_resnet.
"""
from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["read_state_dict", "spr_checkpoint"]


def read_state_dict(path, what: str, hint: str) -> dict:
    """torch.load(weights_only=True) of a state dict, unwrapping {'state_dict': ...} and 'module.' prefixes.

    Raises FileNotFoundError (no file) or ValueError (unreadable, not a state dict) naming `what` or the path,
    followed by `hint` (what to download and where).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}; {hint}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path} is not a readable PyTorch weight file ({type(e).__name__}: {e}); {hint}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict; {hint}")
    return {k.removeprefix("module."): v for k, v in state.items()}


def spr_checkpoint(checkpoints, category) -> str | None:
    """The authors' released SPR weights of `category` in the folder `checkpoints` (<category>.pth), as a path
    string; None when no folder is given. Errors name what was expected and what the folder holds."""
    if checkpoints is None:
        return None
    folder = Path(checkpoints).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"CHECKPOINTS={str(checkpoints)!r} is not a folder; download the authors' released "
                                "SPR weights (one <category>.pth per MVTec AD category) and point CHECKPOINTS at it")
    if category is None:
        raise ValueError("checkpoints are looked up by category name (<category>.pth): pass category")
    path = folder / f"{category}.pth"
    if not path.is_file():
        found = sorted(p.name for p in folder.glob("*.pth"))
        raise FileNotFoundError(f"no SPR checkpoint {path.name} in {folder}; found {found or 'no .pth files'}. "
                                "Expected one file per category named <category>.pth (e.g. bottle.pth)")
    return str(path)
