"""VisA preparation: raw VisA (Data/Images, Data/Masks, split_csv/1cls.csv) into the MVTec layout that
scoreviz.data loads."""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .data import decode_mask
from .imageset import SPLITS, DatasetError

__all__ = ["prepare_visa"]

_VISA_COLUMNS = ("object", "split", "label", "image", "mask")


def _atomic_copy(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.part")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dst)


def _unreadable(path: Path) -> str | None:
    """'path (reason)' when the image at path cannot be decoded (truncated, corrupt), else None."""
    try:
        with Image.open(path) as img:
            img.load()
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        return f"{path} ({err})"
    return None


def prepare_visa(src, dst, *, split_csv=None, progress=True) -> Path:
    """Convert raw VisA (<src>/<cat>/Data/..., split_csv/1cls.csv with object,split,label,image,mask)
    into MVTec layout: <dst>/<cat>/train/good, test/good, test/bad, ground_truth/bad/<stem>.png (0/255).
    The CSV rows and every image and mask they name are checked (decoded) before anything is written, so a
    bad row or file raises DatasetError and leaves dst untouched."""
    src, dst = Path(src), Path(dst)
    csv_path = Path(split_csv) if split_csv is not None else src / "split_csv" / "1cls.csv"
    if not csv_path.is_file():
        raise DatasetError(f"VisA split file {csv_path} not found; expected the 1-class split CSV shipped "
                           f"with VisA (split_csv/1cls.csv under the raw VisA folder), or pass split_csv=")
    with open(csv_path, newline="", encoding="utf-8-sig") as fh:   # utf-8-sig: spreadsheets write a BOM
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if not set(_VISA_COLUMNS) <= set(columns):
            raise DatasetError(f"{csv_path} has columns {columns}; expected {','.join(_VISA_COLUMNS)}")
        rows = [(reader.line_num, {k.strip(): (v or "").strip() for k, v in r.items() if k}) for r in reader]
    jobs, missing, bad = [], [], []
    for line, r in rows:
        if r["object"] in ("", ".", "..") or Path(r["object"]).name != r["object"]:
            raise DatasetError(f"{csv_path} line {line}: object field {r['object']!r} is not a category name; "
                               f"expected the category folder name (e.g. candle) in every row; fix or delete the row")
        if r["split"] not in SPLITS or r["label"] not in ("normal", "anomaly"):
            bad.append(f"{r['image']} (split={r['split']!r}, label={r['label']!r})")
            continue
        folder = "good" if r["label"] == "normal" else "bad"
        image = src / r["image"]
        target = dst / r["object"] / r["split"] / folder / image.name
        mask = src / r["mask"] if folder == "bad" else None
        if folder == "bad" and not r["mask"]:
            missing.append(f"(no mask given for {r['image']})")
        missing += [str(p) for p in (image, mask) if p is not None and not p.is_file()]
        jobs.append((r["object"], image, target, mask))
    if bad:
        raise DatasetError(f"{csv_path}: {len(bad)} rows with unknown split/label, e.g. {bad[:3]}; "
                           f"expected split train/test and label normal/anomaly")
    if missing:
        raise DatasetError(f"{csv_path} names {len(missing)} files missing under {src}, e.g. {missing[:5]}; "
                           f"expected the raw VisA tree <cat>/Data/Images/... and <cat>/Data/Masks/...")
    targets = [t for _, _, t, _ in jobs]
    if len(set(targets)) != len(targets):
        raise DatasetError(f"{csv_path} maps two images to the same file name in one folder; expected unique names")
    files = [p for _, image, _, mask in jobs for p in (image, mask) if p is not None]
    broken = [e for e in map(_unreadable, tqdm(files, desc="check VisA", disable=not progress)) if e]
    if broken:
        raise DatasetError(f"{csv_path} names {len(broken)} unreadable (truncated or corrupt) files, e.g. "
                           f"{broken[:5]}; re-copy them from the VisA archive or delete their rows. "
                           f"Nothing was written to {dst}.")
    for obj, image, target, mask in tqdm(jobs, desc="prepare VisA", disable=not progress):
        target.parent.mkdir(parents=True, exist_ok=True)
        _atomic_copy(image, target)
        if mask is not None:
            m, _ = decode_mask(mask, None)
            out = dst / obj / "ground_truth" / "bad" / f"{image.stem}.png"
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{out.name}.part")
            Image.fromarray(m.astype(np.uint8) * 255).save(tmp, format="PNG")
            os.replace(tmp, out)
    return dst
