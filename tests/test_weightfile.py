"""Tests for scoreviz.weightfile: released weight files read as state dicts, wrappers removed, clear errors."""
import pytest
import torch

from scoreviz.weightfile import read_state_dict


def test_plain_wrapped_and_dataparallel_files_give_the_same_state_dict(tmp_path):
    sd = {"conv.weight": torch.randn(2, 1, 3, 3), "conv.bias": torch.zeros(2)}
    torch.save(sd, tmp_path / "plain.pth")
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "wrapped.pth")
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "dp.pth")
    for name in ("plain.pth", "wrapped.pth", "dp.pth"):
        got = read_state_dict(tmp_path / name, "test file", "hint")
        assert sorted(got) == sorted(sd) and all(torch.equal(got[k], sd[k]) for k in sd), name


def test_errors_name_the_file_and_end_with_the_hint(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no SPR checkpoint at .*missing\.pth; get it there"):
        read_state_dict(tmp_path / "missing.pth", "SPR checkpoint", "get it there")
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"(?s)junk\.pth is not a readable PyTorch weight file .*; get it there"):
        read_state_dict(tmp_path / "junk.pth", "SPR checkpoint", "get it there")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")
    with pytest.raises(ValueError, match=r"holds a Tensor, not a state dict; get it there"):
        read_state_dict(tmp_path / "tensor.pth", "SPR checkpoint", "get it there")
