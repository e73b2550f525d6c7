"""The detector protocol: registry, settings, replace, errors."""
from dataclasses import dataclass

import pytest
import torch

from scoreviz import detectors
from scoreviz.detectors import Detector, register


@dataclass(kw_only=True)
class MeanDistance(Detector):
    """The README's example of adding a detector: one class, one register line (plus a settings check)."""

    name = "mean_distance"
    power: float = 2.0

    def _check(self):
        if self.power <= 0:
            raise ValueError(f"power must be positive, got {self.power}")

    def fit(self, train, *, device="cpu", seed=0, progress=False, tag=None):
        self.mean, self.fitted = train.mean(0), True
        return self

    def maps(self, images, *, generator=None):
        self._require_fit()
        return (images - self.mean).abs().pow(self.power).sum(1)


def test_register_build_and_settings():
    if MeanDistance.name not in detectors.REGISTRY:
        register(MeanDistance)
    det = detectors.build(MeanDistance.name, power=1.0)
    assert det.settings == {"detector": MeanDistance.name, "power": 1.0}
    train = torch.zeros(4, 1, 5, 5)
    x = torch.zeros(2, 1, 5, 5)
    x[1, 0, 2, 3] = 0.5
    maps = det.fit(train).maps(x)
    assert det.scores(maps).tolist() == [0.0, 0.5]
    with pytest.raises(ValueError, match="taken"):
        register(MeanDistance)


def test_every_method_and_baseline_is_registered():
    assert {"spr", "scoredd", "ddad", "zscore", "patch_nn", "pixel_nn"} <= set(detectors.names())


def test_unknown_names_and_settings_raise_with_the_valid_list():
    with pytest.raises(ValueError, match="valid: .*spr"):
        detectors.build("sprr")
    with pytest.raises(TypeError, match="kk"):
        detectors.build("spr", kk=1)
    det = detectors.build("spr")
    with pytest.raises(ValueError, match="valid: .*k"):
        det.replace(kk=1)
    with pytest.raises(ValueError, match="resize"):
        det.replace(resize="cubic")


def test_replace_shares_the_fit_and_leaves_the_original_alone():
    det = MeanDistance(power=2.0).fit(torch.ones(3, 1, 4, 4))
    other = det.replace(power=1.0)
    assert other.fitted and other.mean is det.mean and det.power == 2.0
    x = torch.full((1, 1, 4, 4), 3.0)
    assert torch.equal(other.maps(x), torch.full((1, 4, 4), 2.0))
    assert torch.equal(det.maps(x), torch.full((1, 4, 4), 4.0))


def test_maps_before_fit_raise():
    with pytest.raises(RuntimeError, match="fit"):
        MeanDistance().maps(torch.zeros(1, 1, 4, 4))


def test_mean_reduction_for_image_scores():
    maps = torch.tensor([[[1.0, 3.0]], [[2.0, 2.0]]])
    assert detectors.build("pixel_nn").scores(maps).tolist() == [2.0, 2.0]
    assert detectors.build("zscore").scores(maps).tolist() == [3.0, 2.0]
