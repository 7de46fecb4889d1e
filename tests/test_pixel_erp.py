"""The pixel-erp family (docs/families.md): its pixel statistics by hand, early components reading only the
pixels and late ones only the semantic features, and (slow) its known-model decoder at the reduced size."""

import numpy as np
import pytest

from eegvision.sim.families import Stimuli, get_family
from eegvision.sim.families.pixel_erp import PIXEL_STATISTICS, pixel_statistics


def test_pixel_statistics_of_a_half_red_picture_by_hand():
    """4 x 4: left half pure red, right half black. Luminance 1/3 | 0; the luminance's central-difference gradient
    is -1/6 in the two middle columns (horizontal change: orientation bin 0), 0 elsewhere."""
    img = np.zeros((1, 4, 4, 3), np.uint8)
    img[0, :, :2, 0] = 255
    s = dict(zip(PIXEL_STATISTICS, pixel_statistics(img)[0]))
    expected = {"luminance": 1 / 6, "red_green": 0.5, "blue_yellow": -0.25, "saturation": 0.5,
                "edge_energy": 1 / 12, "orientation_0": 0.75, "orientation_45": -0.25, "orientation_90": -0.25,
                "orientation_135": -0.25, "left_right": 1 / 3, "top_bottom": 0.0, "centre_surround": 0.0}
    for k, v in expected.items():
        assert s[k] == pytest.approx(v, abs=1e-12), k
    with pytest.raises(ValueError, match=r"\(n, H, W, 3\)"):
        pixel_statistics(np.zeros((4, 4, 3), np.uint8))


def test_early_components_read_the_pixels_and_late_ones_the_semantic_features():
    fam = get_family("pixel-erp")
    rng = np.random.default_rng(0)
    n, d = 40, 16
    feats = rng.standard_normal((n, d))
    pix = rng.integers(0, 256, (n, 8, 8, 3), dtype=np.uint8)
    model = fam.build(Stimuli(feats, np.zeros((n, 1)), pix), seed=0)
    k = model.params.n_early
    base = model.codes(Stimuli(feats[:5], np.zeros((5, 1)), pix[:5]))
    new_pixels = model.codes(Stimuli(feats[:5], np.zeros((5, 1)), pix[5:10]))
    new_feats = model.codes(Stimuli(feats[5:10], np.zeros((5, 1)), pix[:5]))
    assert not np.allclose(base[:, :k], new_pixels[:, :k]) and np.array_equal(base[:, k:], new_pixels[:, k:])
    assert np.array_equal(base[:, :k], new_feats[:, :k]) and not np.allclose(base[:, k:], new_feats[:, k:])
    assert np.all((model.latency[:k] >= 0.08) & (model.latency[:k] <= 0.15))
    assert np.all((model.latency[k:] >= 0.20) & (model.latency[k:] <= 0.40))
    full = model.codes(Stimuli(feats, np.zeros((n, 1)), pix))      # standardised on the training images
    np.testing.assert_allclose(full.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(full.std(0), 1, atol=1e-6)
    with pytest.raises(ValueError, match="Stimuli.pixels"):
        model.codes(Stimuli(feats, np.zeros((n, 1))))


@pytest.mark.slow
def test_known_model_beats_ridge_at_small_size(tmp_path):
    from eegvision.sim import simulate

    res = simulate(tmp_path / "pe", family="pixel-erp", preset="small", images=False)
    assert res.known_model["top1"] == pytest.approx(0.32, abs=0.03) and res.known_model["top1"] > 10 * 0.02
    assert res.known_model["top1"] > res.ridge["top1"] + 0.15 and res.known_model["top1"] > res.whitened_ridge["top1"]
    assert not (tmp_path / "pe" / "training_images").exists()      # rendered for the model, not written
