"""Tests for scoreviz.visa: raw VisA trees prepared into MVTec layout, then loaded by scoreviz.data."""
import numpy as np
import pytest
from helpers import check_alignment, check_set, make_raw_visa
from PIL import Image

from scoreviz import data as D
from scoreviz.visa import prepare_visa


def test_visa_prepare_then_load(tmp_path):
    src = make_raw_visa(tmp_path / "VisA_raw")
    dst = prepare_visa(src, tmp_path / "VisA", progress=False)
    gt = np.asarray(Image.open(dst / "candle/ground_truth/bad/000.png"))
    assert set(np.unique(gt)) == {0, 255}                          # 1 -> 255
    assert not list(dst.rglob(".*.part"))
    for cat in ("candle", "pcb1"):
        train = D.load("visa", cat, "train", root=dst, size=40)
        check_set(train, 3, 3, 40)
        test = D.load("visa", cat, "test", root=dst, size=40)
        check_set(test, 4, 3, 40)
        assert test.defect_types == ["good", "good", "bad", "bad"]
        check_alignment(test, 40)
    prepare_visa(src, dst, progress=False)                         # re-running is harmless
    assert len(D.load("visa", "candle", "test", root=dst, size=8)) == 4
    with pytest.raises(D.DatasetError, match="prepare-visa"):
        D.load("visa", "candle", "test", root=src)


def test_visa_csv_problems(tmp_path):
    src = make_raw_visa(tmp_path / "raw", cats=("candle",))
    with pytest.raises(D.DatasetError, match="1cls.csv"):
        prepare_visa(src, tmp_path / "out", split_csv=src / "split_csv" / "2cls.csv", progress=False)
    (src / "candle/Data/Images/Anomaly/001.JPG").unlink()
    with pytest.raises(D.DatasetError, match="Anomaly/001.JPG"):
        prepare_visa(src, tmp_path / "out", progress=False)
    (src / "split_csv/1cls.csv").write_text("name,split\ncandle/x.JPG,train\n")
    with pytest.raises(D.DatasetError, match="object,split,label,image,mask"):
        prepare_visa(src, tmp_path / "out", progress=False)


def rewrite_csv(src, edit):
    """Rewrite split_csv/1cls.csv of a raw tree as edit(list of rows, header first) returns it."""
    path = src / "split_csv" / "1cls.csv"
    rows = [line.split(",") for line in path.read_text().splitlines()]
    path.write_text("\n".join(",".join(r) for r in edit(rows)) + "\n")


def test_visa_row_without_object_is_rejected_with_its_line(tmp_path):
    src = make_raw_visa(tmp_path / "raw", cats=("candle",))
    rewrite_csv(src, lambda rows: rows[:3] + [[""] + rows[3][1:]] + rows[4:])
    with pytest.raises(D.DatasetError, match=r"line 4\b.*object"):
        prepare_visa(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    rewrite_csv(src, lambda rows: rows[:3] + [["../escape"] + rows[3][1:]] + rows[4:])
    with pytest.raises(D.DatasetError, match=r"line 4\b"):
        prepare_visa(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists() and not (tmp_path / "escape").exists()


@pytest.mark.parametrize("bad", ["candle/Data/Masks/Anomaly/001.png", "candle/Data/Images/Normal/0003.JPG"])
def test_visa_corrupt_file_leaves_dst_untouched(tmp_path, bad):
    src = make_raw_visa(tmp_path / "raw", cats=("candle",))
    path = src / bad
    path.write_bytes(path.read_bytes()[:60])                      # truncated: header intact, data cut off
    with pytest.raises(D.DatasetError, match=bad):
        prepare_visa(src, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()                        # nothing written, not half-converted


def test_visa_csv_with_bom_and_spaced_columns(tmp_path):
    src = make_raw_visa(tmp_path / "raw", cats=("candle",))
    path = src / "split_csv" / "1cls.csv"
    text = path.read_text().replace("object,split,label", " object , split,label ", 1)
    path.write_text(text, encoding="utf-8-sig")                   # as spreadsheet programs save it
    dst = prepare_visa(src, tmp_path / "out", progress=False)
    assert len(D.load("visa", "candle", "test", root=dst, size=8)) == 4
