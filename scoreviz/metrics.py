"""Anomaly-detection metrics: image/pixel AUROC, AUPRO (MVTec AD protocol), F1-max, AP.

Plain functions: numpy arrays or torch tensors in, Python float out. Every metric is
exact (one curve point per distinct score, no threshold grid; ties as in sklearn) and
sorts the scores once with np.sort; the curves are then read off at the scores of the
positives only (searchsorted into the sorted copy), since only negatives enter in between.
Working memory is one sorted copy of the scores plus arrays of the positives' size.
"""
import numbers

import numpy as np
from scipy import ndimage

__all__ = ["image_auroc", "pixel_auroc", "aupro", "f1_max", "average_precision",
           "pixel_f1_max", "pixel_average_precision", "evaluate", "bootstrap", "interval"]


def _to_numpy(x, name):
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() and x.element_size() < 4 else x).numpy()
    try:
        return np.asarray(x)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise ValueError(f"{name}: cannot convert {type(x).__name__} to an array ({err})")


def _check_scores(x, name, ndim, shape_doc):
    x = _to_numpy(x, name)
    if x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array of shape {shape_doc}, "
                         f"got shape {tuple(x.shape)}")
    if x.size == 0:
        raise ValueError(f"{name}: expected a non-empty array of shape {shape_doc}, "
                         f"got shape {tuple(x.shape)}")
    if x.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real-valued array, got dtype {x.dtype}")
    if x.dtype.kind != "f" or x.dtype.itemsize < 4:
        x = x.astype(np.float32 if x.dtype.itemsize <= 2 else np.float64)
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: expected finite values, got NaN or inf")
    return x


def _check_binary(y, name, shape, shape_doc, other):
    y = _to_numpy(y, name)
    if y.shape != shape:
        raise ValueError(f"{name}: expected shape {shape_doc} = {shape} to match {other}, "
                         f"got shape {tuple(y.shape)} (dtype {y.dtype})")
    if y.dtype != bool:
        if y.dtype.kind not in "biuf" or not np.isin(y, (0, 1)).all():
            raise ValueError(f"{name}: expected bool or 0/1 values, got dtype {y.dtype} "
                             f"with values {np.unique(y)[:5]}")
        y = y != 0
    return y


def _positive_groups(scores, positive):
    """Summarise every curve at the distinct scores u_j of the positives (ascending).

    Returns lo, hi (entries with score < u_j, <= u_j, from one np.sort of all scores),
    below (positives with score < u_j), count (positives with score == u_j) and order
    (argsort by score of the positives, taken in flat C order). Between two consecutive
    u_j only negatives enter, so ROC, PR and PRO curves are straight lines there.
    """
    flat = scores.reshape(-1)
    v = flat[positive.reshape(-1)]
    order = np.argsort(v, kind="stable")
    v = v[order]
    new = np.ones(v.size, dtype=bool)
    np.not_equal(v[1:], v[:-1], out=new[1:])
    below = np.flatnonzero(new)
    u = v[below]
    count = np.diff(below, append=v.size)
    ranked = np.sort(flat)  # the one full sort: a float copy, no index array
    lo, hi = np.searchsorted(ranked, u, "left"), np.searchsorted(ranked, u, "right")
    return lo, hi, below, count, order


def _classes(positive, name, need_negative=True):
    n_pos = int(np.count_nonzero(positive))
    n_neg = positive.size - n_pos
    if n_pos == 0 or (need_negative and n_neg == 0):
        raise ValueError(f"{name}: expected both classes (0 and 1), got {n_pos} positive and "
                         f"{n_neg} negative entries; the metric is undefined")
    return n_pos, n_neg


def _auroc(scores, positive, name):
    n_pos, n_neg = _classes(positive, name)
    lo, hi, below, count, _ = _positive_groups(scores, positive)
    # Mann-Whitney U (doubled, exact in int64): negatives below count 1, tied negatives 1/2
    u2 = np.sum(count * (2 * (lo - below) + (hi - lo - count)))
    return float(u2 / (2.0 * n_pos * n_neg))


def image_auroc(scores, labels):
    """Image-level ROC AUC. scores (N,), labels (N,) 0/1 with 1 = anomalous; ties as sklearn."""
    scores = _check_scores(scores, "scores", 1, "(N,)")
    labels = _check_binary(labels, "labels", scores.shape, "(N,)", "scores")
    return _auroc(scores, labels, "labels")


def pixel_auroc(maps, masks):
    """Pixel-level ROC AUC over all pixels of all images. maps float (N, H, W), masks bool
    (N, H, W) with True = anomalous pixel (MVTec AD protocol)."""
    maps = _check_scores(maps, "maps", 3, "(N, H, W)")
    masks = _check_binary(masks, "masks", maps.shape, "(N, H, W)", "maps")
    return _auroc(maps, masks, "masks")


def _area(x, y, limit):
    """Trapezoid area under (x, y), x non-decreasing, up to x = limit (interpolated there)."""
    last = np.searchsorted(x, limit, side="right")  # x[:last] <= limit
    area = np.sum(np.diff(x[:last]) * (y[1:last] + y[:last - 1])) / 2.0
    if x[last - 1] < limit:  # between the last point <= limit and the next one
        x0, x1, y0, y1 = x[last - 1], x[last], y[last - 1], y[last]
        area += (limit - x0) * (2 * y0 + (y1 - y0) * (limit - x0) / (x1 - x0)) / 2.0
    return area


def aupro(maps, masks, fpr_limit=0.3):
    """Normalised area under the PRO curve, official MVTec AD protocol. maps float (N, H, W),
    masks bool (N, H, W).

    Regions: 8-connected components of each mask. For every distinct score t (no grid):
    FPR(t) = fraction of all normal pixels of all images with score >= t, PRO(t) = mean over
    all regions of the fraction of the region's pixels with score >= t. The curve, prefixed
    with (0, 0), is integrated with trapezoids up to fpr_limit (linear interpolation at the
    limit) and divided by fpr_limit. Exact: the curve is kept at the scores of region
    pixels only (before and after each tie group); in between it is horizontal.
    """
    maps = _check_scores(maps, "maps", 3, "(N, H, W)")
    masks = _check_binary(masks, "masks", maps.shape, "(N, H, W)", "maps")
    if not (isinstance(fpr_limit, numbers.Real) and 0 < fpr_limit <= 1):
        raise ValueError(f"fpr_limit: expected a number in (0, 1], got {fpr_limit!r}")
    ids, n_regions = [], 0  # global region id of every region pixel, in flat C order
    for mask in masks:
        lab, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=int))
        ids.append(lab[mask] + n_regions)
        n_regions += n
    n_pos = sum(len(i) for i in ids)
    n_normal = masks.size - n_pos
    if n_regions == 0:
        raise ValueError(f"masks: expected at least one anomalous pixel, got all False "
                         f"(shape {tuple(masks.shape)}); PRO is undefined")
    if n_normal == 0:
        raise ValueError(f"masks: expected at least one normal (False) pixel, got all True "
                         f"(shape {tuple(masks.shape)}); FPR is undefined")
    lo, hi, below, count, order = _positive_groups(maps, masks)
    ids = np.concatenate(ids)[order]
    w = 1.0 / np.bincount(ids)[ids]  # 1 / region size, region pixels by ascending score
    overlap = np.zeros(n_pos + 1)  # overlap[k]: sum of w over the region pixels ranked >= k
    overlap[:-1] = np.cumsum(w[::-1])[::-1]
    # two points per tie group j: just above u_j (score > u_j) and at u_j (score >= u_j)
    above = below + count
    x = np.empty(2 * below.size + 2)
    y = np.empty_like(x)
    x[0], y[0], x[-1], y[-1] = 0.0, 0.0, 1.0, 1.0
    x[1:-1:2] = ((maps.size - hi) - (n_pos - above))[::-1] / n_normal
    x[2:-1:2] = ((maps.size - lo) - (n_pos - below))[::-1] / n_normal
    y[1:-1:2] = overlap[above][::-1] / n_regions
    y[2:-1:2] = overlap[below][::-1] / n_regions
    return float(_area(np.clip(x, 0, 1), np.clip(y, 0, 1), fpr_limit) / fpr_limit)


def _pr_groups(scores, labels, name):
    n_pos, _ = _classes(labels, name, need_negative=False)
    lo, _, below, count, _ = _positive_groups(scores, labels)
    return n_pos, count, n_pos - below, scores.size - lo  # P, new TP, TP, predicted positive


def _f1_max(scores, labels, name):
    n_pos, _, tp, n_pred = _pr_groups(scores, labels, name)
    return float(np.max(2.0 * tp / (n_pred + n_pos)))  # F1 = 2TP / (2TP + FP + FN)


def _average_precision(scores, labels, name):
    n_pos, new_tp, tp, n_pred = _pr_groups(scores, labels, name)
    return float(np.sum(new_tp * (tp / n_pred)) / n_pos)


def f1_max(scores, labels):
    """Best F1 over all thresholds (every distinct score, predict score >= t). scores (N,),
    labels (N,) 0/1 with 1 = anomalous. The best threshold is always a positive's score."""
    scores = _check_scores(scores, "scores", 1, "(N,)")
    return _f1_max(scores, _check_binary(labels, "labels", scores.shape, "(N,)", "scores"),
                   "labels")


def average_precision(scores, labels):
    """Average precision, sum over thresholds of (R_k - R_{k-1}) P_k, as
    sklearn.metrics.average_precision_score. scores (N,), labels (N,) 0/1."""
    scores = _check_scores(scores, "scores", 1, "(N,)")
    return _average_precision(
        scores, _check_binary(labels, "labels", scores.shape, "(N,)", "scores"), "labels")


def pixel_f1_max(maps, masks):
    """F1-max over all pixels of all images. maps float (N, H, W), masks bool (N, H, W)."""
    maps = _check_scores(maps, "maps", 3, "(N, H, W)")
    return _f1_max(maps, _check_binary(masks, "masks", maps.shape, "(N, H, W)", "maps"), "masks")


def pixel_average_precision(maps, masks):
    """Average precision over all pixels of all images. maps (N, H, W), masks bool (N, H, W)."""
    maps = _check_scores(maps, "maps", 3, "(N, H, W)")
    return _average_precision(
        maps, _check_binary(masks, "masks", maps.shape, "(N, H, W)", "maps"), "masks")


def evaluate(maps, masks, labels, *, image_scores=None, pro: bool = True, fpr_limit: float = 0.3) -> dict:
    """Image AUROC (score = max of each map unless image_scores is given), pixel AUROC and AUPRO in one dict.

    Pixel metrics are NaN when the masks hold no anomalous pixel (e.g. MNIST one-class).
    """
    maps = _check_scores(maps, "maps", 3, "(N, H, W)")
    scores = maps.reshape(len(maps), -1).max(1) if image_scores is None else image_scores
    out = {"image_auroc": image_auroc(scores, labels)}
    has_pixels = bool(_to_numpy(masks, "masks").any())
    out["pixel_auroc"] = pixel_auroc(maps, masks) if has_pixels else float("nan")
    if pro:
        out["aupro"] = aupro(maps, masks, fpr_limit) if has_pixels else float("nan")
    return out


def _pair_counts(pos_values, pos_owner, neg_groups, n_rows):
    """(n_rows, len(neg_groups)) doubled Mann-Whitney counts: entry (i, j) sums, over the positives of row i,
    2 x (negatives of group j below) + (negatives of group j tied)."""
    out = np.zeros((n_rows, len(neg_groups)))
    for j, neg in enumerate(neg_groups):
        neg = np.sort(neg)
        lo, hi = np.searchsorted(neg, pos_values, "left"), np.searchsorted(neg, pos_values, "right")
        out[:, j] = np.bincount(pos_owner, weights=lo + hi, minlength=n_rows)
    return out


def bootstrap(scores, labels, maps=None, masks=None, *, n_boot: int = 1000, seed=0) -> dict:
    """Image AUROC (and, with maps and masks, pixel AUROC) of n_boot resamples of the test images.

    Each resample draws the normal and the anomalous images with replacement, separately (stratified, so both
    classes are always present), and every metric is exact on it: one count matrix per metric of (positive
    image or pixel group, negative group) Mann-Whitney counts, weighted by how often each image was drawn.
    Images are the unit of resampling, also for pixel AUROC (pixels of one image are not independent).
    Returns {'image_auroc': (n_boot,), ['pixel_auroc': (n_boot,),] 'counts': (n_boot, N) draws per image}.
    The draws depend only on labels, n_boot and seed (anything np.random.default_rng takes): two detectors
    evaluated on the same test images get the same resamples, so the difference of their samples is a paired
    bootstrap of the difference.
    """
    scores = _check_scores(scores, "scores", 1, "(N,)")
    labels = _check_binary(labels, "labels", scores.shape, "(N,)", "scores")
    _classes(labels, "labels")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot: expected a positive integer, got {n_boot!r}")
    rng = np.random.default_rng(seed)
    counts = np.zeros((int(n_boot), len(labels)))
    for group in (np.flatnonzero(~labels), np.flatnonzero(labels)):
        draws = rng.integers(0, len(group), (int(n_boot), len(group)))
        np.add.at(counts, (np.arange(int(n_boot))[:, None], group[draws]), 1)
    pos, neg = np.flatnonzero(labels), np.flatnonzero(~labels)
    pairs = _pair_counts(scores[pos], np.arange(len(pos)), [scores[[j]] for j in neg], len(pos))
    a, b = counts[:, pos], counts[:, neg]
    out = {"image_auroc": np.einsum("bi,ij,bj->b", a, pairs, b) / (2 * a.sum(1) * b.sum(1)), "counts": counts}
    if maps is not None:
        maps = _check_scores(maps, "maps", 3, "(N, H, W)")
        masks = _check_binary(masks, "masks", maps.shape, "(N, H, W)", "maps")
        if len(maps) != len(labels):
            raise ValueError(f"maps: expected one map per image score ({len(labels)}), got {len(maps)}")
        _classes(masks, "masks")
        owner = np.broadcast_to(np.arange(len(maps))[:, None, None], maps.shape)
        pairs = _pair_counts(maps[masks], owner[masks], [m[~k] for m, k in zip(maps, masks)], len(maps))
        n_pos, n_neg = masks.reshape(len(masks), -1).sum(1), (~masks).reshape(len(masks), -1).sum(1)
        out["pixel_auroc"] = (np.einsum("bi,ij,bj->b", counts, pairs, counts)
                              / (2 * (counts @ n_pos) * (counts @ n_neg)))
    return out


def interval(samples, level: float = 0.95) -> tuple[float, float]:
    """The central `level` percentile interval of bootstrap samples (e.g. bootstrap(...)['image_auroc'])."""
    if not 0 < level < 1:
        raise ValueError(f"level: expected a number in (0, 1), got {level!r}")
    lo, hi = np.percentile(np.asarray(samples, dtype=float), [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)
