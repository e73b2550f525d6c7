"""Fixtures shared by several test files; the plain helpers they use are in helpers.py."""
from pathlib import Path

import pytest
import torch
from helpers import make_mvtec

HAZELNUT = Path(__file__).resolve().parents[2] / "shared" / "data" / "hazelnut_toy"


@pytest.fixture
def mvtec(tmp_path):
    """Three miniature MVTec-layout categories: RGB png, grayscale, 16-bit grayscale png."""
    root = tmp_path / "mvtec"
    make_mvtec(root, "bottle")                                  # RGB png
    make_mvtec(root, "grid", mode="L", defects=("bent",))       # grayscale
    make_mvtec(root, "screw", mode="I;16", defects=("thread",))  # 16-bit grayscale png
    return root


@pytest.fixture
def hazelnut():
    """The real hazelnut_toy dataset in MVTec layout (../shared/data); the test is skipped without it."""
    if not HAZELNUT.is_dir():
        pytest.skip(f"hazelnut_toy not found at {HAZELNUT}")
    return HAZELNUT


@pytest.fixture
def official_spr_state_dict():
    """A released SPR checkpoint's state dict: names and shapes of the official U-Net (unet_model.py of the
    official repository), enumerated here, with random values."""
    sd = {"embed.0.W": torch.randn(128) * 30, "embed.1.weight": torch.randn(256, 256) * 0.05,
          "embed.1.bias": torch.zeros(256)}

    def dconv(prefix, cin, cout, mid=None):
        mid = mid or cout
        for j, (i, o) in zip((0, 3), ((cin, mid), (mid, cout))):
            sd[f"{prefix}.{j}.weight"] = torch.randn(o, i, 3, 3) * 0.02
            sd[f"{prefix}.{j}.bias"] = torch.zeros(o)
            sd[f"{prefix}.{j + 1}.weight"] = torch.ones(o)
            sd[f"{prefix}.{j + 1}.bias"] = torch.zeros(o)

    def dense(name, c):
        sd[f"{name}.dense.weight"], sd[f"{name}.dense.bias"] = torch.randn(c, 256) * 0.02, torch.zeros(c)

    dconv("inc.double_conv", 3, 64)
    dense("dense_in", 64)
    for i, (a, b) in enumerate([(64, 128), (128, 256), (256, 512), (512, 512)], 1):
        dconv(f"down{i}.maxpool_conv.1.double_conv", a, b)
        dense(f"dense_d{i}", b)
    for i, (a, b) in enumerate([(1024, 256), (512, 128), (256, 64), (128, 64)], 1):
        dconv(f"up{i}.conv.double_conv", a, b, a // 2)
        dense(f"dense_u{i}", b)
    sd["outc.conv.weight"], sd["outc.conv.bias"] = torch.randn(3, 64, 1, 1) * 0.1, torch.zeros(3)
    return sd
