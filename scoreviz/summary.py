"""Dataset summaries (`scoreviz data-summary`): categories, image counts per split and defect type, masks,
sizes, modes and problems of a dataset folder, without decoding the images."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .data import is_category_dir, list_images, mask_index, subdirs
from .imageset import CATEGORIES, SPLITS, DatasetError

__all__ = ["summarize"]


def _header(path: Path) -> tuple[tuple[int, int], str] | None:
    try:
        with Image.open(path) as img:
            return img.size, img.mode
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


def _summarize_category(catdir: Path, normal: str) -> list[str]:
    lines, problems, sizes, modes = [f"  {catdir.name}"], [], {}, {}
    rel = lambda p: p.relative_to(catdir.parent)  # noqa: E731
    for split in SPLITS:
        split_dir = catdir / split
        if not split_dir.is_dir():
            problems.append(f"missing split folder {rel(split_dir)}")
            continue
        counts, n_masks, n_defect = [], 0, 0
        for folder in sorted(subdirs(split_dir), key=lambda d: (d.name != normal, d.name)):
            files = list_images(folder)
            counts.append(f"{folder.name} {len(files)}")
            if not files:
                problems.append(f"empty folder {rel(folder)}")
            index = {} if folder.name == normal else mask_index(catdir / "ground_truth" / folder.name)
            for f in files:
                head = _header(f)
                if head is None:
                    problems.append(f"unreadable image {rel(f)}")
                    continue
                sizes[head[0]] = sizes.get(head[0], 0) + 1
                modes[head[1]] = modes.get(head[1], 0) + 1
                if folder.name == normal:
                    continue
                n_defect += 1
                if f.stem not in index:
                    problems.append(f"no mask for {rel(f)} in {rel(catdir / 'ground_truth' / folder.name)}")
                    continue
                n_masks += 1
                mhead = _header(index[f.stem])
                if mhead is None or mhead[0] != head[0]:
                    got = "unreadable" if mhead is None else "x".join(map(str, mhead[0]))
                    problems.append(f"mask {rel(index[f.stem])} is {got}, image is {head[0][0]}x{head[0][1]}")
        masks = f"  (masks {n_masks}/{n_defect})" if n_defect else ""
        lines.append(f"    {split:<5}: {', '.join(counts) or 'no class folders'}{masks}")
    fmt = lambda d: ", ".join(f"{k} ({v})" for k, v in sorted(d.items(), key=str))  # noqa: E731
    lines.append(f"    sizes: {fmt({f'{w}x{h}': n for (w, h), n in sizes.items()}) or '-'}")
    lines.append(f"    modes: {fmt(modes) or '-'}")
    shown = problems[:5] + ([f"... and {len(problems) - 5} more"] if len(problems) > 5 else [])
    lines.append("    problems: none" if not problems else "    problems:\n      - " + "\n      - ".join(shown))
    return lines


def summarize(root, dataset=None) -> str:
    """Human-readable summary of a dataset folder: layout, categories, image counts per split and
    defect type, masks found, image sizes and modes, and problems (missing masks, size mismatches)."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist (or is not a folder); expected a dataset "
                           f"folder such as the MVTec AD root or one category folder")
    raw_visa = [p.name for p in subdirs(root) if (p / "Data" / "Images").is_dir()]
    if raw_visa:
        return (f"{root}: raw VisA layout ({len(raw_visa)} categories: {', '.join(raw_visa)}).\n"
                f"Run `scoreviz prepare-visa {root} DST` to convert it to MVTec layout, then summarize DST.")
    catdirs = [root] if is_category_dir(root) else [p for p in subdirs(root) if is_category_dir(p)]
    if not catdirs:
        return (f"{root}: no category folders found (expected <category>/train/good and <category>/test/...); "
                f"subfolders: {[p.name for p in subdirs(root)] or 'none'}")
    btad = dataset == "btad" or any((d / "train" / "ok").is_dir() for d in catdirs)
    normal = "ok" if btad else "good"
    layout = "BTAD (ok/ko)" if btad else "MVTec"
    lines = [f"{root}: {layout} layout, {len(catdirs)} categor{'y' if len(catdirs) == 1 else 'ies'}: "
             f"{', '.join(d.name for d in catdirs)}"]
    if dataset in CATEGORIES and catdirs != [root]:
        absent = [c for c in CATEGORIES[dataset] if c not in {d.name for d in catdirs}]
        if absent:
            lines.append(f"  missing {dataset} categories: {', '.join(absent)}")
    for d in catdirs:
        lines += _summarize_category(d, normal)
    return "\n".join(lines)
