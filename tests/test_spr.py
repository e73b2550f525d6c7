import math

import pytest
import torch

from scoreviz.sde import SPRSDE, bcast
from scoreviz.spr import project_to_curve, restoration_error, restore
from scoreviz.toys import curve_manifold, line_manifold

SDE = SPRSDE(25.0)


def _std(k):
    return SDE.marginal_std(torch.tensor([k], dtype=torch.float64)).item()


def gaussian_score(x, t):
    """Exact score of N(0, I) data perturbed by the SPR SDE: -x / (1 + s(t)^2)."""
    return -x / bcast(1 + SDE.marginal_std(t) ** 2, x)


def point_mass_score(x, t):
    """Exact score of a point mass at 0 perturbed by the SPR SDE: -x / s(t)^2."""
    return -x / bcast(SDE.marginal_std(t) ** 2, x)


@pytest.mark.parametrize("shape", [(3, 2, 5, 4), (6, 3)], ids=["images", "points"])
def test_matches_independent_loop_with_same_draws(shape):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    k, n = 0.05, 4
    got = restoration_error(gaussian_score, x, SDE, k, n, generator=torch.Generator().manual_seed(9))
    # independent implementation: the same n draws, one score call per draw, Algorithm 1's loop
    eps = torch.randn((n, *shape), generator=torch.Generator().manual_seed(9))
    std, t = _std(k), torch.full((shape[0],), k)
    ref = torch.zeros(shape[:1] + shape[2:])
    for i in range(n):
        residual = eps[i] + std * gaussian_score(x + std * eps[i], t)
        ref += residual.pow(2).sum(1) / n
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, rtol=1e-5, atol=1e-6)


def test_all_draws_in_one_score_call_of_batch_b_times_n():
    calls = []

    def counting(x, t):
        calls.append((tuple(x.shape), tuple(t.shape)))
        return gaussian_score(x, t)

    x = torch.randn(5, 3, 8, 8)
    restoration_error(counting, x, SDE, 1e-3, n=3, generator=torch.Generator().manual_seed(0))
    assert calls == [((15, 3, 8, 8), (15,))]


def test_point_mass_closed_form_is_exact():
    """Data = point mass at 0: the residual is -x / s_k for every draw, so e = ||x||^2 / s_k^2 exactly."""
    x = torch.randn(4, 2, 3, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    e = restoration_error(point_mass_score, x, SDE, 1e-3, n=3, generator=torch.Generator().manual_seed(2))
    assert torch.allclose(e, x.pow(2).sum(1) / _std(1e-3) ** 2, rtol=1e-9)


def test_gaussian_closed_form_expectation():
    """Data N(0, I_D): residual (eps - s x) / (1 + s^2), so E e = (D + s^2 ||x||^2) / (1 + s^2)^2."""
    D, k, n = 3, 0.3, 40000
    x = torch.tensor([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5]], dtype=torch.float64)
    e = restoration_error(gaussian_score, x, SDE, k, n=n, generator=torch.Generator().manual_seed(3))
    s2 = _std(k) ** 2
    expected = (D + s2 * x.pow(2).sum(1)) / (1 + s2) ** 2
    assert torch.allclose(e, expected, rtol=0.03)


def test_normal_points_on_a_line_score_about_one_and_off_points_more():
    line = line_manifold(400, 4.0)
    k = 1e-3
    s = _std(k)
    x = torch.tensor([[0.0, 0.0], [0.3, 0.0], [0.0, 2 * s], [0.0, 4 * s]])
    e = restoration_error(line.score_fn(SDE), x, SDE, k, n=2000, generator=torch.Generator().manual_seed(0))
    assert e.shape == (4,)
    assert torch.allclose(e, torch.tensor([1.0, 1.0, 5.0, 17.0]), rtol=0.1)


def test_input_checks():
    with pytest.raises(ValueError, match="points"):
        restoration_error(gaussian_score, torch.zeros(2, 3, 4), SDE)
    with pytest.raises(ValueError, match="positive integer"):
        restoration_error(gaussian_score, torch.zeros(2, 3), SDE, n=0)
    with pytest.raises(ValueError, match="single number"):
        restoration_error(gaussian_score, torch.zeros(2, 3), SDE, k=torch.tensor([0.1, 0.2]))


def test_restore_is_tweedie_posterior_mean():
    """For N(mu, I) data, x~ + s^2 score = E[x | x~] = mu + (x~ - mu) / (1 + s^2)."""
    mu = torch.tensor([1.0, -2.0])
    k = 0.2
    s2 = _std(k) ** 2
    score = lambda x, t: (mu - x) / bcast(1 + SDE.marginal_std(t) ** 2, x)  # noqa: E731
    x_tilde = torch.randn(10, 2, generator=torch.Generator().manual_seed(0)) * 2
    assert torch.allclose(restore(score, x_tilde, SDE, k), mu + (x_tilde - mu) / (1 + s2), atol=1e-6)


def test_project_to_curve():
    seg = torch.tensor([[0.0, 0.0], [1.0, 0.0], [2.0, 0.0]])
    x = torch.tensor([[0.5, 1.0], [1.5, -0.3], [3.0, 1.0], [-1.0, -1.0]])
    expected = torch.tensor([[0.5, 0.0], [1.5, 0.0], [2.0, 0.0], [0.0, 0.0]])
    assert torch.allclose(project_to_curve(x, seg), expected)
    arc = curve_manifold(600, radius=2.0).means
    a = torch.linspace(-1.0, 1.0, 7, dtype=torch.float64)
    pts = torch.stack([a.cos(), a.sin()], 1) * torch.linspace(1.5, 2.5, 7, dtype=torch.float64)[:, None]
    proj = project_to_curve(pts, arc)
    # on the circle, at the same angle up to the chord error (a fraction of the vertex spacing 0.008 rad)
    assert torch.allclose(proj.norm(dim=1), torch.full((7,), 2.0, dtype=torch.float64), atol=1e-4)
    assert torch.allclose(torch.atan2(proj[:, 1], proj[:, 0]), a, atol=2e-3)
    with pytest.raises(ValueError, match="vertices"):
        project_to_curve(x, seg[:1])


def test_reproducible_with_generator():
    x = torch.randn(3, 1, 4, 4)
    a = restoration_error(gaussian_score, x, SDE, generator=torch.Generator().manual_seed(5))
    b = restoration_error(gaussian_score, x, SDE, generator=torch.Generator().manual_seed(5))
    c = restoration_error(gaussian_score, x, SDE, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert math.isfinite(a.sum().item())


# ---------------------------------------------------------------------------------------------------------
# Images: Algorithm 1 end to end, protocols, data, models, label-free k.
import dataclasses  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402

from scoreviz import configs, spr  # noqa: E402
from scoreviz.data import DatasetError, ImageSet  # noqa: E402
from scoreviz.maps import mean_filter, resize_maps  # noqa: E402


def _image_set(x, masks):
    labels = masks.flatten(1).any(1).long()
    return ImageSet(x, masks, labels, ["bad" if y else "good" for y in labels], [""] * len(x))


def _squares(B=8, size=16, C=1, seed=0):
    """Normal images = 0, anomalous ones carry a bright square; masks mark the square. (B, C, S, S), (B, S, S)."""
    g = torch.Generator().manual_seed(seed)
    x, masks = torch.zeros(B, C, size, size), torch.zeros(B, size, size, dtype=torch.bool)
    for i in range(B // 2, B):
        r, c = torch.randint(2, size - 6, (2,), generator=g).tolist()
        masks[i, r:r + 4, c:c + 4] = True
        x[i, :, r:r + 4, c:c + 4] = 0.8
    return x, masks


@pytest.mark.parametrize("size,expected", [(256, 31), (192, 23), (64, 7), (48, 5), (32, 3), (8, 1)])
def test_scaled_kernel_keeps_the_share_of_the_map_and_is_odd(size, expected):
    assert spr.scaled_kernel(size) == expected
    with pytest.raises(ValueError):
        spr.scaled_kernel(0)


def test_postprocess_protocols_match_independent_implementations():
    raw = torch.rand(2, 12, 12, generator=torch.Generator().manual_seed(0))
    got = spr.postprocess(raw, kernel=5, out_size=16, **spr.PROTOCOLS["official"])
    up = F.interpolate(raw[:, None], size=(16, 16), mode="bilinear", align_corners=False)
    ref = F.avg_pool2d(up, 5, stride=1, padding=2, count_include_pad=True)[:, 0]   # the official code's filter
    assert torch.allclose(got, ref, atol=1e-6)
    paper = spr.postprocess(raw, kernel=5, out_size=16)
    assert torch.allclose(paper, mean_filter(resize_maps(raw, 16, "lanczos"), 5, padding="reflect"))
    inner = (slice(None), slice(3, -3), slice(3, -3))
    assert (paper - got)[inner].abs().max() < (paper - got).abs().max()    # they differ most at the borders


def test_error_maps_chunks_share_one_network_call_each_and_match_restoration_error():
    calls = []

    def counting(x, t):
        calls.append(x.shape[0])
        return point_mass_score(x, t)

    x = torch.randn(5, 2, 4, 4, generator=torch.Generator().manual_seed(0))
    got = spr.error_maps(counting, x, SDE, k=1e-2, n=3, batch_size=2, generator=torch.Generator().manual_seed(1))
    assert calls == [6, 6, 3]                                   # ceil(5 / 2) calls of batch chunk * n
    assert torch.allclose(got, x.pow(2).sum(1) / _std(1e-2) ** 2, rtol=1e-5)   # closed form of the point mass
    one = spr.error_maps(gaussian_score, x, SDE, k=0.1, n=2, batch_size=8, generator=torch.Generator().manual_seed(2))
    ref = restoration_error(gaussian_score, x, SDE, 0.1, 2, generator=torch.Generator().manual_seed(2))
    assert torch.equal(one, ref)
    with pytest.raises(ValueError, match="images must be"):
        spr.error_maps(gaussian_score, x[0], SDE)


def test_anomaly_map_spr_is_error_then_resize_then_filter():
    x, _ = _squares(4, 16)
    maps = spr.anomaly_map_spr(point_mass_score, x, SDE, k=1e-3, n=2, kernel=3, out_size=24,
                               generator=torch.Generator().manual_seed(0))
    ref = mean_filter(resize_maps(x.pow(2).sum(1) / _std(1e-3) ** 2, 24, "lanczos"), 3)
    assert maps.shape == (4, 24, 24) and torch.allclose(maps, ref, rtol=1e-4, atol=1e-3)


def test_detect_finds_squares_and_is_reproducible():
    x, masks = _squares(8, 16)
    test = _image_set(x, masks)
    big = resize_maps(masks.float(), 24, "nearest") > 0.5
    det = spr.detect(point_mass_score, test, SDE, masks=big, k=1e-3, n=2, kernel=3, out_size=24, batch_size=3,
                     seed=0, progress=False)
    assert det.maps.shape == (8, 24, 24) and det.raw.shape == (8, 16, 16) and det.scores.shape == (8,)
    assert det.metrics["image_auroc"] == 1.0 and det.metrics["pixel_auroc"] > 0.95 and det.metrics["aupro"] > 0.5
    assert det.seconds_per_image > 0 and det.settings["k"] == 1e-3
    again = spr.detect(point_mass_score, test, SDE, k=1e-3, n=2, kernel=3, out_size=24, seed=0, progress=False)
    assert torch.equal(again.masks, big)                         # masks at another size are resized (nearest)
    noisy = lambda x, t: gaussian_score(x, t)  # noqa: E731
    a = spr.detect(noisy, test, SDE, k=0.1, n=2, kernel=3, out_size=24, seed=3, progress=False, pro=False)
    b = spr.detect(noisy, test, SDE, k=0.1, n=2, kernel=3, out_size=24, seed=3, progress=False, pro=False)
    c = spr.detect(noisy, test, SDE, k=0.1, n=2, kernel=3, out_size=24, seed=4, progress=False, pro=False)
    assert torch.equal(a.raw, b.raw) and not torch.equal(a.raw, c.raw) and "aupro" not in a.metrics
    official = det.reprocess(**spr.PROTOCOLS["official"])
    assert torch.allclose(official.maps, spr.postprocess(det.raw, kernel=3, out_size=24, **spr.PROTOCOLS["official"]))
    assert official.settings["padding"] == "zeros" and torch.equal(official.raw, det.raw)
    with pytest.raises(ValueError, match="ImageSet"):
        spr.detect(point_mass_score, x, SDE)


def test_load_category_textures_sizes_and_holdout():
    d = spr.load_category("textures", "brick", size=32, eval_size=48, holdout=0.1)
    assert d.train.images.shape == (180, 1, 32, 32) and len(d.holdout) == 20
    assert d.test.images.shape == (60, 1, 32, 32) and d.masks.shape == (60, 48, 48)
    assert d.test.labels.sum() == 30 and d.masks[d.test.labels == 0].sum() == 0
    assert d.masks[d.test.labels == 1].flatten(1).any(1).all()
    with pytest.raises(ValueError, match="fraction"):
        spr.load_category("textures", "brick", size=32, eval_size=48, holdout=20)


def _write_mvtec(root, category="bottle", size=40):
    """A tiny MVTec-layout category with grayscale PNGs (converted to RGB on loading)."""
    rng = np.random.default_rng(0)
    cat = root / category
    for sub, n in (("train/good", 6), ("test/good", 2), ("test/crack", 2)):
        (cat / sub).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size, size), dtype=np.uint8)).save(cat / sub / f"{i:03d}.png")
    (cat / "ground_truth/crack").mkdir(parents=True)
    for i in range(2):
        m = np.zeros((size, size), dtype=np.uint8)
        m[10:20, 10:20] = 255
        Image.fromarray(m).save(cat / "ground_truth/crack" / f"{i:03d}_mask.png")
    return cat


def test_load_category_folders_rgb_and_data_root_resolution(tmp_path):
    cat = _write_mvtec(tmp_path / "mvtec")
    for root in (tmp_path, tmp_path / "mvtec"):                # DATA_ROOT or DATA_ROOT/mvtec
        d = spr.load_category("mvtec", "bottle", root=root, size=16, eval_size=24)
        assert d.train.images.shape == (6, 3, 16, 16) and d.test.images.shape == (4, 3, 16, 16)
        assert d.masks.shape == (4, 24, 24) and d.masks[2:].sum() > 0 and d.holdout is None
    folder = spr.load_category("folder", None, root=cat, size=16, eval_size=24, holdout=0.3)
    assert folder.name == "bottle" and len(folder.holdout) == 2 and len(folder.train) == 4
    with pytest.raises(DatasetError, match="DATA_ROOT"):
        spr.load_category("mvtec", "bottle", root=None)


def test_train_config_and_categories():
    paper_cfg, cpu_cfg = configs.get("paper", "spr"), configs.get("cpu", "spr")
    mv, bt = spr.train_config(paper_cfg, "mvtec"), spr.train_config(paper_cfg, "btad")
    assert (mv.epochs, mv.batch_size, mv.lr, mv.weight_decay, mv.ema_decay) == (3000, 16, 1e-4, 1e-3, 0.9999)
    assert mv.milestones == (1000, 2000) and bt.milestones == () and mv.grad_clip is None
    assert spr.train_config(cpu_cfg, "textures", 180).epochs == 20          # 12 steps x 20 epochs = 240 steps
    assert spr.train_config(cpu_cfg, "folder", 25).epochs == 120            # small folders train longer
    assert spr.categories(cpu_cfg, "textures") == ["brick", "grass", "gravel"]
    assert len(spr.categories(paper_cfg, "mvtec")) == 15 and spr.categories(paper_cfg, "folder") == [None]
    assert spr.categories(paper_cfg, "mvtec", "screw") == ["screw"]


def test_official_checkpoint_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        spr.official_checkpoint(tmp_path / "nope", "bottle")
    (tmp_path / "cable.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"bottle.pth.*cable.pth"):
        spr.official_checkpoint(tmp_path, "bottle")


def test_paper_profile_checkpoint_training_step_and_detection_at_paper_resolution(tmp_path):
    """The paper profile's network: released weights load, one training step and one detection at 192 -> 256 px."""
    from test_nets import _official_spr_state_dict

    cfg = configs.get("paper", "spr")
    torch.save(_official_spr_state_dict(), tmp_path / "bottle.pth")
    x = torch.rand(1, 3, cfg.size, cfg.size, generator=torch.Generator().manual_seed(0)) * 2 - 1
    model = spr.score_model(cfg, "mvtec", "bottle", x, checkpoints=tmp_path, device="cpu")
    assert model.output == "std" and model.net.spec["preset"] == "spr"
    tcfg = dataclasses.replace(spr.train_config(cfg, "mvtec"), epochs=1)
    before = [p.detach().clone() for p in model.parameters()]
    from scoreviz.train import train
    result = train(model.train(), x, tcfg, device="cpu", progress=False)
    assert len(result.history) == 1 and math.isfinite(result.history[0])
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    maps = spr.anomaly_map_spr(result.ema.eval(), x, get_sde_spr(cfg), k=cfg.k, n=cfg.n,
                               kernel=spr.scaled_kernel(cfg.eval_size, cfg.kernel_at_256), out_size=cfg.eval_size,
                               generator=torch.Generator().manual_seed(0))
    assert maps.shape == (1, 256, 256) and torch.isfinite(maps).all()


def get_sde_spr(cfg):
    from scoreviz.sde import get_sde
    return get_sde(cfg.sde, **cfg.sde_kwargs)


def test_cpu_profile_trains_once_and_detects(tmp_path, monkeypatch):
    """The cpu path end to end at a tiny budget: train_cached into a temporary cache, then reuse it."""
    monkeypatch.setenv("SCOREVIZ_CACHE", str(tmp_path))
    cfg = configs.get("cpu", "spr", train={**configs.get("cpu", "spr").train, "epochs": 1, "batch_size": 90},
                      min_steps=0)
    d, model = spr.prepare_category(cfg, "textures", "brick", device="cpu", progress=False)   # 2 steps
    assert len(list(tmp_path.iterdir())) == 1 and not model.training
    d2, model2 = spr.prepare_category(cfg, "textures", "brick", device="cpu", progress=False)   # cached
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), model2.state_dict().values()))
    det = spr.detect(model, d.test, get_sde_spr(cfg), masks=d.masks, k=0.1, n=2,
                     kernel=spr.scaled_kernel(cfg.eval_size), out_size=cfg.eval_size, progress=False, pro=False)
    assert det.maps.shape == (60, 48, 48) and 0.0 <= det.metrics["image_auroc"] <= 1.0


def test_k_criterion_closed_form_and_selection():
    """Gaussian data N(0, I) with its exact score: r(k) = E (eps - s x)^2 / (1 + s^2)^2 = 1 / (1 + s^2)."""
    x = torch.randn(64, 2, 8, 8, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    ks = [1e-3, 0.1, 0.5]
    table = spr.k_criterion(gaussian_score, x, SDE, ks, n=4, kernel=3, out_size=8)
    s2 = np.array([_std(k) ** 2 for k in ks])
    assert np.allclose(table.r, 1 / (1 + s2), rtol=0.05)
    assert np.allclose(table.c, np.clip(1 - np.sqrt(table.r), 0, None))
    assert np.allclose(table.criterion, table.c**2 / (table.sigma_k**2 * table.spread))
    assert spr.select_k(table) == float(table.k[table.criterion.idxmax()])
    zero = spr.k_criterion(lambda x, t: torch.zeros_like(x), x, SDE, ks, n=2, kernel=3, out_size=8)
    assert np.allclose(zero.r, 1.0, atol=0.05)                  # a zero score restores nothing
    with pytest.raises(ValueError, match="normal_images"):
        spr.k_criterion(gaussian_score, x[:1], SDE, ks)
    with pytest.raises(ValueError, match="undefined"):
        spr.select_k(table.assign(criterion=np.nan))


def test_time_inference_columns():
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    score = lambda x, t: net(x)  # noqa: E731
    table = spr.time_inference(score, torch.randn(4, 1, 8, 8), SDE, ns=(1, 3), repeats=1)
    assert list(table.N) == [1, 3] and (table.ms_per_image > 0).all() and (table.forward_passes > 0).all()


@pytest.mark.parametrize("dataset", ["mvtec", "btad", "mpdd", "textures"])
def test_benchmark_table_in_the_papers_layout(dataset):
    from scoreviz import paper
    from scoreviz.data import CATEGORIES

    cats = CATEGORIES[dataset]
    rows = [{"dataset": dataset, "category": c, "variant": v, "image_auroc": 0.9 + 0.001 * i, "pixel_auroc": 0.95,
             "aupro": 0.8} for i, c in enumerate(cats) for v in ("paper", "label_free")]
    results = pd.DataFrame(rows)
    for metric in ("image_auroc", "pixel_auroc", "aupro"):
        table, compared = spr.benchmark_table(results, dataset, metric, {"paper": "ours", "label_free": "free"})
        assert list(table.columns) == ["mean", *cats]
        assert table.loc["ours", "mean"] == pytest.approx(np.mean([r[metric] for r in rows if r["variant"] == "paper"]))
        if (dataset, metric) in spr.PAPER_TABLES:
            ref = paper.reported("spr", dataset, metric)
            assert table.index[0].startswith("SPR (paper") and table.iloc[0]["mean"] == ref["mean"]
            assert table.iloc[0][cats[0]] == ref[cats[0]]
            assert compared.loc["mean", "measured"] == pytest.approx(table.loc["ours", "mean"])
        else:
            assert compared is None and list(table.index) == ["ours", "free"]
    with pytest.raises(ValueError, match="no results"):
        spr.benchmark_table(results, "visa", "image_auroc")


def test_spr_plot_functions_draw_into_given_axes():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from scoreviz import plots

    fig, ax = plt.subplots(subplot_kw={"projection": "polar"})
    out = plots.plot_radar({"a": {"x": 0.9, "y": 0.8, "z": 0.7}, "b": {"x": 0.6, "y": 0.9, "z": 0.8}}, ax=ax,
                           linestyles=["-", "--"], rlim=(0.5, 1.0))
    assert out is ax and len(ax.lines) == 2 and ax.get_ylim() == (0.5, 1.0)
    with pytest.raises(ValueError, match="polar"):
        plots.plot_radar({"a": {"x": 1, "y": 1, "z": 1}}, ax=plt.subplots()[1])
    with pytest.raises(ValueError, match="lacks"):
        plots.plot_radar({"a": {"x": 1, "y": 1, "z": 1}, "b": {"x": 1}}, ax=ax)
    x, masks = _squares(2, 12)
    axes = plots.plot_anomaly_grid(x, torch.rand(2, 12, 12), masks, vmax=[1.0, 2.0])
    assert axes.shape == (2, 3) and axes[1, 1].images[0].get_clim() == (0.0, 2.0)
    grid = plots.plot_image_grid([[x[0], torch.rand(12, 12)], [x[1]]], row_labels=["a", "b"], col_labels=["u", "v"])
    assert grid.shape == (2, 2) and not grid[1, 1].axison
    fig, ax = plt.subplots()
    ax.plot([1e-4, 1.0], [0, 1])
    ax.set_xscale("log")
    top = plots.plot_sigma_axis(ax, ticks=(0.01, 0.1, 1.0))
    ticks = dict(zip([t.get_text() for t in top.get_xticklabels()], top.get_xticks()))
    for label, sigma in (("0.01", 0.01), ("0.1", 0.1), ("1", 1.0)):   # tick at the k whose sigma_k is the label
        assert SDE.marginal_std(torch.tensor([ticks[label]], dtype=torch.float64)).item() == pytest.approx(sigma)
    plt.close("all")
