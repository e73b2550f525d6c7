"""Tests for scoreviz.imageset: selecting from an ImageSet, the loaders' size argument."""
import torch

from scoreviz.imageset import ImageSet, size_hw


def test_subset_and_repr():
    kinds = ["good", "good", "crack", "crack", "scratch", "scratch"]
    s = ImageSet(torch.zeros(6, 3, 8, 8), torch.zeros(6, 8, 8, dtype=torch.bool),
                 torch.tensor([k != "good" for k in kinds], dtype=torch.int64), kinds, [f"{i:03d}.png" for i in range(6)])
    sub = s.subset(s.labels.bool())
    assert len(sub) == 4 and sub.defect_types == ["crack", "crack", "scratch", "scratch"]
    assert s.subset([0, 5]).paths == [s.paths[0], s.paths[5]]
    assert len(s.subset(slice(1, 3))) == 2
    assert "n=6" in repr(s)


def test_size_hw():
    assert size_hw(32) == (32, 32) and size_hw((20, 30.0)) == (20, 30) and size_hw(None) is None
