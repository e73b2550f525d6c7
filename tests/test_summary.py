"""Tests for scoreviz.summary: summaries of miniature trees, hazelnut_toy and raw VisA."""
import pytest
from helpers import make_mvtec, make_raw_visa, write_mask

from scoreviz import data as D
from scoreviz.summary import summarize, summarize_report


def test_summarize_hazelnut(hazelnut):
    text = summarize(hazelnut)
    assert "hazelnut_toy" in text and "good 28" in text and "good 6" in text
    assert "colour 17" in text and "masks 17/17" in text and "problems: none" in text


def test_summarize_miniature_trees(mvtec, tmp_path):
    text = summarize(mvtec, dataset="mvtec")
    for want in ("bottle", "grid", "screw", "3 categories", "good 4", "crack 2", "masks 4/4", "20x20",
                 "I;16", "missing mvtec categories"):
        assert want in text, want
    (mvtec / "bottle/ground_truth/crack/000_mask.png").unlink()
    write_mask(mvtec / "grid/ground_truth/bent/001_mask.png", size=10)
    text = summarize(mvtec)
    assert "no mask for" in text and "crack/000.png" in text and "10x10" in text
    btad = tmp_path / "btad"
    make_mvtec(btad, "02", normal="ok", defects=("ko",), mask_suffix="")
    assert "BTAD" in summarize(btad) and "ok 4" in summarize(btad / "02")
    with pytest.raises(D.DatasetError, match="missing_root"):
        summarize(tmp_path / "missing_root")


def test_summarize_raw_visa_points_to_prepare_visa(tmp_path):
    assert "prepare-visa" in summarize(make_raw_visa(tmp_path / "VisA_raw"))


def test_summarize_reports_unreadable_image(mvtec):
    (mvtec / "bottle/train/good/002.png").write_bytes(b"this is not a png")
    assert "unreadable image" in summarize(mvtec)


def truncate(path):
    path.write_bytes(path.read_bytes()[:60])                     # header intact, pixel data cut off


def test_summarize_reports_truncated_image_and_mask(mvtec):
    truncate(mvtec / "bottle/train/good/001.png")
    truncate(mvtec / "grid/ground_truth/bent/000_mask.png")
    with pytest.raises(D.DatasetError, match="001.png"):            # what data.load rejects ...
        D.load("mvtec", "bottle", "train", root=mvtec, size=8)
    text = summarize(mvtec)                                         # ... the summary lists
    assert "unreadable image bottle/train/good/001.png" in text
    assert "mask grid/ground_truth/bent/000_mask.png is unreadable" in text


def test_summarize_report_returns_problems(mvtec, tmp_path):
    text, problems = summarize_report(mvtec, dataset="mvtec")
    assert text == summarize(mvtec, dataset="mvtec") and problems == []
    truncate(mvtec / "screw/test/thread/001.png")
    (mvtec / "bottle/ground_truth/crack/000_mask.png").unlink()
    text, problems = summarize_report(mvtec)
    assert len(problems) == 2 and text == summarize(mvtec)
    assert any("screw/test/thread/001.png" in p for p in problems)
    assert any("bottle/test/crack/000.png" in p for p in problems)
    (tmp_path / "empty").mkdir()
    assert summarize_report(tmp_path / "empty")[1]                  # nothing loadable is a problem too
    assert summarize_report(make_raw_visa(tmp_path / "VisA_raw"))[1]
