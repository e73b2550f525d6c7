import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import make_mvtec, write_image
from PIL import Image

from scoreviz import detect
from scoreviz.cli import main


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREVIZ_CACHE", str(tmp_path / "models"))
    return make_mvtec(tmp_path / "data", "bottle", n_train=6, n_good=3, n_defect=3)


def test_detect_writes_scores_maps_metrics_and_page(folder, tmp_path):
    """A baseline and a method on a labelled folder: every file is there and the numbers are the detector's own."""
    page = detect.detect(folder, out=tmp_path / "out", method="zscore", size=16)
    out = page.parent
    scores = pd.read_csv(out / "scores.csv")
    assert list(scores.columns) == ["image", "label", "defect", "zscore"] and len(scores) == 9
    assert scores.label.tolist() == [0] * 3 + [1] * 6
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics.detector.tolist() == ["zscore"] and metrics.image_auroc.iloc[0] == 1.0   # bright squares
    pngs = sorted(p.name for p in (out / "maps" / "zscore").iterdir())
    assert len(pngs) == 9 and "crack_000.png" in pngs and "good_002.png" in pngs
    with Image.open(out / "maps" / "zscore" / "crack_000.png") as im:
        assert im.size == (3 * 16 + 2 * 4, 16)                 # input | overlay | ground truth
    with Image.open(out / "maps" / "zscore" / "good_000.png") as im:
        assert im.size == (2 * 16 + 4, 16)                     # no ground truth for normal images
    text = page.read_text()
    assert "Defective images with the lowest scores" in text and 'src="maps/zscore/crack_000.png"' in text


def test_overlay_puts_the_hot_map_where_the_map_is_high():
    image = torch.zeros(1, 8, 8)
    amap = torch.zeros(8, 8)
    amap[2:4, 2:4] = 1.0
    panels = np.asarray(detect.overlay(image, amap, 0.0, 1.0))
    over = panels[:, 12:20].astype(int)                       # second panel (after 8 px and a 4 px gap)
    assert over[3, 3].sum() > over[6, 6].sum() + 200


def test_detect_unlabelled_folder_scores_without_metrics(folder, tmp_path):
    for i in range(3):
        write_image(tmp_path / "new" / f"n{i}.png", "RGB", 500 + i, defect=i == 2)
    page = detect.detect(folder, out=tmp_path / "out", method="patch_nn", test=tmp_path / "new", size=16)
    scores = pd.read_csv(page.parent / "scores.csv")
    assert list(scores.columns) == ["image", "patch_nn"] and scores.image.tolist() == ["n0.png", "n1.png", "n2.png"]
    assert scores.patch_nn.idxmax() == 2                       # the one with the bright square
    assert "no labels" in page.read_text() and "image_auroc" not in pd.read_csv(page.parent / "metrics.csv")


def test_detect_all_builds_every_method_and_baseline_from_the_profile():
    dets = detect.build("all", profile="cpu", dataset="folder", category=None, size=32, n_train=20)
    assert list(dets) == ["spr", "scoredd_ve_flow", "ddad", "zscore", "patch_nn"]
    assert dets["spr"].out_size == 32 and dets["ddad"].features == "denoiser"
    with pytest.raises(ValueError, match="valid: all, methods, spr"):
        detect.build("sprr", profile="cpu", dataset="folder", category=None, size=32, n_train=20)


def test_detect_command_with_a_method(folder, tmp_path, capsys):
    """The CLI end to end with a trained method (DDAD, cpu profile, tiny images): maps that find the squares."""
    assert main(["detect", str(folder), "--method", "ddad", "--size", "16", "--out", str(tmp_path / "o")]) == 0
    assert "open" in capsys.readouterr().out
    metrics = pd.read_csv(tmp_path / "o" / "metrics.csv")
    assert metrics.detector.tolist() == ["ddad"] and metrics.fit_s.iloc[0] > 0
    assert metrics[["image_auroc", "pixel_auroc", "aupro"]].apply(lambda v: v.between(0, 1)).all().all()


def test_detect_bad_input_is_one_error_line(tmp_path, capsys, folder):
    assert main(["detect", str(tmp_path / "absent"), "--method", "zscore"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "absent" in err and "Traceback" not in err
    assert main(["detect", str(folder.parent), "--dataset", "mvtec", "--method", "zscore"]) == 1   # no --category
    assert "name one with category= (CLI: --category), e.g. one of bottle" in capsys.readouterr().err


def test_detect_a_test_split_of_normal_images_only_gets_no_metrics(tmp_path, monkeypatch):
    monkeypatch.setenv("SCOREVIZ_CACHE", str(tmp_path / "models"))
    folder = make_mvtec(tmp_path / "data", "bottle", n_train=4, n_good=3, defects=("crack",))
    for sub in (folder / "test" / "crack", folder / "ground_truth"):
        shutil.rmtree(sub)
    page = detect.detect(folder, out=tmp_path / "out", method="zscore", size=16)
    assert list(pd.read_csv(page.parent / "metrics.csv").columns) == ["detector", "fit_s", "ms_per_image"]
