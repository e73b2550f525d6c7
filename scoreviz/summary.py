"""Dataset summaries (`scoreviz data-summary`): categories, image counts per split and defect type, masks,
sizes, modes and problems of a dataset folder. Every image and mask is decoded, so truncated or corrupt
files are listed as problems (as `data.load` would reject them)."""
from __future__ import annotations

from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from .data import is_category_dir, list_images, mask_index, subdirs
from .imageset import CATEGORIES, SPLITS, DatasetError

__all__ = ["summarize", "summarize_report"]


def _header(path: Path) -> tuple[tuple[int, int], str] | None:
    """Size and mode of a fully decodable image; None when it cannot be opened or decoded (truncated...)."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.size, img.mode
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError):
        return None


def _summarize_category(catdir: Path, normal: str, progress: bool) -> tuple[list[str], list[str]]:
    lines, problems, sizes, modes = [f"  {catdir.name}"], [], {}, {}
    rel = lambda p: p.relative_to(catdir.parent)  # noqa: E731
    bar = tqdm(desc=f"check {catdir.name}", unit="img", disable=not progress, leave=False)
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
                bar.update()
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
    bar.close()
    fmt = lambda d: ", ".join(f"{k} ({v})" for k, v in sorted(d.items(), key=str))  # noqa: E731
    lines.append(f"    sizes: {fmt({f'{w}x{h}': n for (w, h), n in sizes.items()}) or '-'}")
    lines.append(f"    modes: {fmt(modes) or '-'}")
    shown = problems[:5] + ([f"... and {len(problems) - 5} more"] if len(problems) > 5 else [])
    lines.append("    problems: none" if not problems else "    problems:\n      - " + "\n      - ".join(shown))
    return lines, problems


def summarize(root, dataset=None, progress=False) -> str:
    """Human-readable summary of a dataset folder: layout, categories, image counts per split and
    defect type, masks found, image sizes and modes, and problems (missing masks, size mismatches,
    unreadable files). The text of summarize_report."""
    return summarize_report(root, dataset, progress)[0]


def summarize_report(root, dataset=None, progress=False) -> tuple[str, list[str]]:
    """The summary text of summarize() and the list of problems found (empty when the folder loads as is):
    one line each, naming the file or folder relative to the dataset root. A raw VisA tree or a folder
    without category folders is one problem. progress=True shows a progress bar per category."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist (or is not a folder); expected a dataset "
                           f"folder such as the MVTec AD root or one category folder")
    raw_visa = [p.name for p in subdirs(root) if (p / "Data" / "Images").is_dir()]
    if raw_visa:
        text = (f"{root}: raw VisA layout ({len(raw_visa)} categories: {', '.join(raw_visa)}).\n"
                f"Run `scoreviz prepare-visa {root} DST` to convert it to MVTec layout, then summarize DST.")
        return text, [f"raw VisA layout; run `scoreviz prepare-visa {root} DST` first"]
    catdirs = [root] if is_category_dir(root) else [p for p in subdirs(root) if is_category_dir(p)]
    if not catdirs:
        text = (f"{root}: no category folders found (expected <category>/train/good and <category>/test/...); "
                f"subfolders: {[p.name for p in subdirs(root)] or 'none'}")
        return text, ["no category folders found"]
    btad = dataset == "btad" or any((d / "train" / "ok").is_dir() for d in catdirs)
    normal = "ok" if btad else "good"
    layout = "BTAD (ok/ko)" if btad else "MVTec"
    lines = [f"{root}: {layout} layout, {len(catdirs)} categor{'y' if len(catdirs) == 1 else 'ies'}: "
             f"{', '.join(d.name for d in catdirs)}"]
    if dataset in CATEGORIES and catdirs != [root]:
        absent = [c for c in CATEGORIES[dataset] if c not in {d.name for d in catdirs}]
        if absent:
            lines.append(f"  missing {dataset} categories: {', '.join(absent)}")
    problems = []
    for d in catdirs:
        cat_lines, cat_problems = _summarize_category(d, normal, progress)
        lines += cat_lines
        problems += cat_problems
    return "\n".join(lines), problems
