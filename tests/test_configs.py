import pytest

from scoreviz import configs


def test_every_experiment_resolves_in_both_profiles():
    for name in configs.EXPERIMENTS:
        for profile in configs.PROFILES:
            cfg = configs.get(profile, name)
            assert cfg.profile == profile and cfg.experiment == name


def test_overrides_and_clear_errors():
    cfg = configs.get("cpu", "gmm_trajectories", n_paths=5)
    assert cfg.n_paths == 5 and cfg["n_paths"] == 5
    assert configs.get("cpu", "gmm_trajectories").n_paths != 5  # no leak into the table
    with pytest.raises(ValueError, match="valid profiles: cpu, paper"):
        configs.get("gpu", "gmm_trajectories")
    with pytest.raises(ValueError, match="valid experiments: gmm_trajectories"):
        configs.get("cpu", "nope")
    with pytest.raises(ValueError, match="unknown setting"):
        configs.get("cpu", "gmm_trajectories", n_pathz=3)
    with pytest.raises(AttributeError, match="config has no setting 'sigma'"):
        configs.get("cpu", "gmm_trajectories").sigma


def test_deep_copies_protect_the_table():
    a = configs.get("cpu", "gmm_trajectories")
    a.sde_kwargs["N"] = -1
    assert configs.get("cpu", "gmm_trajectories").sde_kwargs["N"] == 100
