import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage

from scoreviz.maps import gaussian_blur, image_scores, mean_filter, resize_maps
from scoreviz.metrics import evaluate, image_auroc


def test_mean_filter_matches_scipy_and_official_zero_padding():
    m = torch.rand(2, 20, 24, generator=torch.Generator().manual_seed(0))
    ref = np.stack([ndimage.uniform_filter(a, 5, mode="mirror") for a in m.numpy()])
    assert np.allclose(mean_filter(m, 5).numpy(), ref, atol=1e-6)
    ref0 = np.stack([ndimage.uniform_filter(a, 5, mode="constant", cval=0.0) for a in m.numpy()])
    assert np.allclose(mean_filter(m, 5, padding="zeros").numpy(), ref0, atol=1e-6)
    assert torch.equal(mean_filter(m, 1), m)
    with pytest.raises(ValueError, match="odd"):
        mean_filter(m, 4)


def test_gaussian_blur_matches_scipy():
    m = torch.rand(1, 40, 40, generator=torch.Generator().manual_seed(1))
    ref = ndimage.gaussian_filter(m[0].numpy(), 2.0, mode="mirror", truncate=4.0)
    assert np.allclose(gaussian_blur(m, 2.0)[0].numpy(), ref, atol=1e-5)


def test_resize_methods():
    m = torch.rand(3, 12, 12, generator=torch.Generator().manual_seed(2))
    lz = resize_maps(m, 24)
    ref = np.asarray(Image.fromarray(m[1].numpy(), mode="F").resize((24, 24), Image.LANCZOS))
    assert lz.shape == (3, 24, 24) and np.allclose(lz[1].numpy(), ref)
    bl = resize_maps(m, (24, 30), "bilinear")
    assert bl.shape == (3, 24, 30)
    assert torch.allclose(bl.mean(), m.mean(), atol=0.02)
    with pytest.raises(ValueError, match="valid: lanczos"):
        resize_maps(m, 24, "cubic")
    with pytest.raises(ValueError, match=r"\(B, H, W\)"):
        resize_maps(m[0], 24)


def test_evaluate_combines_metrics():
    g = torch.Generator().manual_seed(3)
    masks = torch.zeros(6, 8, 8, dtype=torch.bool)
    masks[3:, 2:5, 2:5] = True
    maps = torch.rand(6, 8, 8, generator=g) + 2 * masks
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    res = evaluate(maps, masks, labels)
    assert res["image_auroc"] == image_auroc(image_scores(maps), labels) == 1.0
    assert res["pixel_auroc"] == 1.0 and res["aupro"] == pytest.approx(1.0)
    res = evaluate(maps, torch.zeros_like(masks), labels, pro=False)
    assert math.isnan(res["pixel_auroc"]) and "aupro" not in res
