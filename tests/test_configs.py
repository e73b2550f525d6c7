import dataclasses

import pytest

from scoreviz import configs, methods
from scoreviz.train import TrainConfig


def test_every_experiment_resolves_in_every_profile():
    for name, cls in configs.EXPERIMENTS.items():
        for profile in configs.PROFILES:
            cfg = configs.get(profile, name)
            assert type(cfg) is cls and cfg.profile == profile and cfg.experiment == name
            assert isinstance(cfg.datasets, tuple) and isinstance(cfg.categories, dict)
            if hasattr(cfg, "train"):
                assert isinstance(cfg.train, TrainConfig)
    for cls in configs.EXPERIMENTS.values():
        assert set(cls.PROFILES) == {"cpu", "paper"}                    # 'fast' is derived from 'paper'
        for values in cls.PROFILES.values():
            assert set(values) <= {f.name for f in dataclasses.fields(cls)}


def test_overrides_and_clear_errors():
    cfg = configs.get("cpu", "gmm_trajectories", n_paths=5)
    assert cfg.n_paths == 5 and configs.get("cpu", "gmm_trajectories").n_paths != 5  # no leak into the defaults
    with pytest.raises(ValueError, match="valid profiles: cpu, fast, paper"):
        configs.get("gpu", "gmm_trajectories")
    with pytest.raises(ValueError, match="valid experiments: gmm_trajectories"):
        configs.get("cpu", "nope")
    with pytest.raises(ValueError, match=r"unknown setting\(s\) n_pathz .*valid: profile, datasets"):
        configs.get("cpu", "gmm_trajectories", n_pathz=3)
    with pytest.raises(AttributeError, match="sigma"):
        configs.get("cpu", "gmm_trajectories").sigma
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.n_paths = 1


def test_replace_merges_training_settings_and_makes_lists_tuples():
    cfg = configs.get("cpu", "spr")
    new = cfg.replace(train={"epochs": 3}, n_values=[1, 2], categories={"textures": ["brick"]})
    assert (new.train.epochs, new.train.lr) == (3, cfg.train.lr) and cfg.train.epochs == 20
    assert new.n_values == (1, 2) and new.categories_of("textures") == ("brick",) and new.categories_of("x") == ()
    with pytest.raises(ValueError, match=r"unknown train setting\(s\) epoch; valid: epochs"):
        cfg.replace(train={"epoch": 3})
    assert configs.get("cpu", "spr", train=TrainConfig(epochs=7)).train.epochs == 7


def test_profile_tables_differ_where_the_papers_do():
    assert configs.get("paper", "spr").size == 192 and configs.get("cpu", "spr").size == 32
    paper, cpu = configs.get("paper", "ddad"), configs.get("cpu", "ddad")
    assert (paper.n_calibration, paper.fe_epochs, paper.paper_settings) == (32, 3, True)
    assert (cpu.n_calibration, cpu.fe_epochs, cpu.paper_settings) == (16, 0, False)
    assert configs.get("cpu", "scoredd_mnist").categories_of("mnist") == tuple(range(10))


def test_one_embedded_benchmark_for_every_method_and_fewer_categories_for_the_ablations():
    """#14: SPR, Score-DD and DDAD read the same images of the embedded benchmark at one size on the cpu profile
    (every category; held-out normal images of the same count for SPR and Score-DD); the ablation notebooks a subset."""
    spr, sdd, ddad = (configs.get("cpu", e) for e in ("spr", "scoredd_images", "ddad"))
    assert spr.datasets == sdd.datasets == ddad.datasets == ("embedded",)
    assert spr.size == spr.eval_size == sdd.size == ddad.size == 32 and spr.holdout == sdd.n_val == 20
    assert spr.categories_of("embedded") == sdd.categories_of("embedded") == ddad.categories_of("embedded") == ()
    assert spr.categories_of("embedded", ablation=True) == sdd.categories_of("embedded", ablation=True) \
        == ("brick", "grass", "digit3")
    assert ddad.categories_of("embedded", ablation=True) == ()         # none configured: every category
    assert configs.get("paper", "spr").categories_of("mvtec", ablation=True) == ()


def test_fast_profile_is_the_paper_profile_with_the_fast_recipe():
    """'fast': the paper's data, resolution and network; FAST_RECIPE's training for a tenth of the epochs."""
    for name in ("spr", "ddad", "scoredd_images", "scoredd_mnist"):
        fast, paper = configs.get("fast", name), configs.get("paper", name)
        assert (fast.datasets, fast.size, fast.net, fast.net_kwargs) == (paper.datasets, paper.size, paper.net,
                                                                          paper.net_kwargs)
        assert fast.train.epochs == paper.train.epochs // configs.FAST_SHARE
        assert (fast.train.schedule, fast.train.ema_warmup, fast.train.milestones) == ("cosine", True, ())
        assert (fast.train.lr, fast.train.batch_size) == (paper.train.lr, paper.train.batch_size)
    assert configs.get("fast", "spr").train.ema_decay == 0.999 and configs.get("fast", "ddad").train.ema_decay == 0.0
    assert configs.get("fast", "spr").detector("mvtec", n_train=200).train.milestones == ()   # cosine, not steps
    assert configs.get("fast", "gmm_trajectories").train == configs.get("paper", "gmm_trajectories").train
    assert configs.notebook_datasets("05_spr_benchmark", "fast") == ("mvtec", "btad", "mpdd")


def test_notebook_datasets_are_read_from_the_settings():
    assert configs.notebook_datasets("05_spr_benchmark", "paper") == ("mvtec", "btad", "mpdd")
    assert configs.notebook_datasets("03_spr_effective_region", "paper") == ("mvtec",)
    assert configs.notebook_datasets("09_ddad", "paper") == ("mvtec", "visa")
    assert configs.notebook_datasets("07_scoredd_mnist", "cpu") == ("mnist",)
    assert configs.notebook_datasets("01_gmm_trajectories", "paper") == ()


# ------------------------------------------------------------------------------------- detectors per profile
def test_spr_detector_per_profile_and_dataset():
    paper_cfg, cpu_cfg = configs.get("paper", "spr"), configs.get("cpu", "spr")
    mv, bt = paper_cfg.detector("mvtec", n_train=200), paper_cfg.detector("btad", n_train=200)
    t = mv.train
    assert (t.epochs, t.batch_size, t.lr, t.weight_decay, t.ema_decay, t.grad_clip) == (3000, 16, 1e-4, 1e-3, 0.9999, None)
    assert t.milestones == (1000, 2000) and bt.train.milestones == ()          # lr steps on MVTec AD only
    assert (mv.k, mv.n, mv.kernel, mv.out_size, mv.resize, mv.padding, mv.checkpoint) == \
        (1e-3, 3, 31, 256, "lanczos", "reflect", None)                          # SPR Sec. 5.3
    cpu = cpu_cfg.detector("embedded", n_train=180)
    assert cpu.train.epochs == 20 and (cpu.kernel, cpu.out_size) == (3, 32)   # 12 x 20 = 240 steps; 31 x 32 / 256
    assert cpu_cfg.detector("folder", n_train=25).train.epochs == 120         # small folders train longer
    official = cpu_cfg.replace(protocol="official").detector("textures", n_train=180)
    assert (official.resize, official.padding) == ("bilinear", "zeros")
    assert paper_cfg.train.milestones == ()                                    # the settings are not modified
    with pytest.raises(ValueError, match="unknown protocol 'x'"):
        cpu_cfg.replace(protocol="x").detector("textures")


def test_spr_detector_checkpoint_path_and_errors(tmp_path):
    cfg = configs.get("paper", "spr")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        cfg.detector("mvtec", "bottle", checkpoints=tmp_path / "nope")
    (tmp_path / "cable.pth").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"bottle.pth.*cable.pth"):
        cfg.detector("mvtec", "bottle", checkpoints=tmp_path)
    with pytest.raises(ValueError, match="category"):
        cfg.detector("mvtec", checkpoints=tmp_path)
    assert cfg.detector("mvtec", "cable", checkpoints=tmp_path).checkpoint == str(tmp_path / "cable.pth")
    # the released weights are MVTec AD's: BTAD and MPDD train (the paper-profile smoke run stopped at btad/01.pth)
    assert cfg.detector("btad", "01", checkpoints=tmp_path).checkpoint is None


def test_ddad_detector_follows_the_readme():
    """README values per category (paper profile); per-dataset values with 'dataset/category' before 'dataset'
    before 'default'."""
    paper = configs.get("paper", "ddad")
    d = paper.detector("mvtec", "carpet")
    assert (d.w, d.train.epochs, d.fe_epochs, d.v, d.lam, d.batch_size) == (0, 2500, 0, 1.0, 0.1, 16)
    d = paper.detector("visa", "pcb1")
    assert (d.w, d.fe_epochs, d.v, d.lam, d.da_batch_size, d.batch_size) == (9, 8, 7.0, 0.01, 16, 32)
    assert d.features == "wide_resnet101" and d.layers == ("layer2", "layer3")
    assert paper.detector("visa", "cashew").v == 1.0 and paper.detector("visa", "candle").da_batch_size == 32
    assert paper.train.epochs == 2000            # the settings themselves are not modified
    cpu = configs.get("cpu", "ddad").detector("textures", "brick", weights="w.pth", data_root="/data")
    assert (cpu.w, cpu.fe_epochs, cpu.v, cpu.train.epochs, cpu.features) == (1.0, 0, 7.0, 20, "denoiser")
    assert (cpu.weights, cpu.data_root) == ("w.pth", "/data")
    unlisted = paper.replace(paper_settings=False).detector("mvtec", "carpet")
    assert (unlisted.w, unlisted.fe_epochs) == (3.0, 3)
    with pytest.raises(ValueError, match="no DDAD settings"):
        paper.detector("mvtec", "bagel")
    with pytest.raises(ValueError, match="add a 'default' key"):
        paper.replace(v={"visa": 7.0}).detector("mvtec", "carpet")


@pytest.mark.parametrize("profile", ["cpu", "paper"])
def test_scoredd_detector_per_sde(profile):
    cfg = configs.get(profile, "scoredd_images")
    for sde in ("ve", "vp", "subvp"):
        det = cfg.detector(sde, "sde", method="recon_loss")
        assert isinstance(det, methods.ScoreDD)
        assert (det.sde, det.sde_kwargs, det.t_steps) == (sde, cfg.sde_kwargs[sde], tuple(cfg.t_steps[sde]))
        assert (det.sampler, det.method, det.layers, det.net) == ("sde", "recon_loss", tuple(cfg.layers), cfg.net)
    det = cfg.detector("vp", "flow")
    det.net_kwargs["changed"] = True
    assert "changed" not in cfg.net_kwargs
    mnist = configs.get(profile, "scoredd_mnist")
    det = mnist.detector(mnist.sde, mnist.sampler)
    assert (det.sde_kwargs, det.t_steps, det.batch_size) == (mnist.sde_kwargs["vp"], mnist.t_steps["vp"],
                                                             mnist.batch_size)
    with pytest.raises(ValueError, match="no settings for SDE 've' in 'scoredd_mnist'; valid: vp"):
        mnist.detector("ve", "flow")
    with pytest.raises(ValueError, match="unknown sampler 'ode'"):
        cfg.detector("vp", "ode")


@pytest.mark.parametrize("profile", configs.PROFILES)
def test_smoke_settings_cut_training_and_loops_but_keep_the_paths(profile):
    for name in configs.EXPERIMENTS:
        full, smoke = configs.get(profile, name), configs.get(profile, name, smoke=True)
        assert smoke.train.epochs == 1 and smoke.profile == full.profile and smoke.datasets == full.datasets
    spr = configs.get(profile, "spr", smoke=True)
    assert spr.min_steps == 0 and spr.seeds == 2 and spr.size == configs.get(profile, "spr").size  # 04: spreads
    ddad = configs.get(profile, "ddad", smoke=True).detector("mvtec", "bottle")   # the README's epochs, capped
    assert ddad.train.epochs == 1 and ddad.fe_epochs <= 1
    full, smoke = configs.get(profile, "scoredd_images"), configs.get(profile, "scoredd_images", smoke=True)
    for sde in full.t_steps:                           # at most 200 steps; the start times t = step / N are kept
        n, m = full.sde_kwargs[sde]["N"], smoke.sde_kwargs[sde]["N"]
        assert m <= 200 and [t / n for t in full.t_steps[sde]] == [t / m for t in smoke.t_steps[sde]]
    assert set(smoke.select_steps) >= set(smoke.t_steps[smoke.ablation_variant[0]])  # the configured {t} is a candidate
