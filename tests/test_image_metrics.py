"""MindEye metric suite: formulas vs references written here, network loading, pairing by concept index."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from eegvision.metrics.identification import (
    FeatureExtractors,
    convert_swav_checkpoint,
    correlation_distance,
    correlation_matrix,
    two_way_identification,
)
from eegvision.metrics.images import pixcorr, resize, resize_antialias, ssim, to_float_batch
from eegvision.metrics.pairing import (
    format_table,
    pair_reconstructions,
    scan_ground_truth,
    score_images,
    write_results,
)
from eegvision.store.concepts import ConceptTable

skimage_metrics = pytest.importorskip("skimage.metrics")
from scipy.spatial.distance import correlation as scipy_correlation  # noqa: E402
from skimage.color import rgb2gray  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def _smooth_images(n, size, seed):
    """Random but image-like (smooth) RGB images in [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 3, size // 4, size // 4, generator=g)
    return resize(x, size).clamp(0, 1)


# ---------------------------------------------------------------------------- pixel metrics
@pytest.mark.parametrize("size", [None, 48])
def test_ssim_equals_skimage(size):
    gt, rec = _smooth_images(3, 40, 0), _smooth_images(3, 40, 1)
    got = ssim(gt, rec, size=size)
    if size is not None:
        gt, rec = resize(gt, size), resize(rec, size)
    for i in range(3):
        a = rgb2gray(gt[i].permute(1, 2, 0).double().numpy())
        b = rgb2gray(rec[i].permute(1, 2, 0).double().numpy())
        ref = skimage_metrics.structural_similarity(b, a, gaussian_weights=True, sigma=1.5,
                                                    use_sample_covariance=False, data_range=1.0)
        assert got[i].item() == pytest.approx(ref, abs=1e-10)
    assert torch.allclose(ssim(gt, gt, size=size), torch.ones(3, dtype=torch.float64))


def _formula_images(kind, n=4, size=96):
    """uint8 (n, size, size, 3) images with fine detail, from a closed formula (no random generator)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64)
    out = []
    for k in range(n):
        ch = []
        for c in range(3):
            f1, f2 = 3 + 2 * k + c + (5 if kind == "rec" else 0), 7 + k - c
            ch.append(0.5 + 0.3 * np.sin(2 * np.pi * (f1 * x + f2 * y) / size + c + k)
                      + 0.2 * np.cos(2 * np.pi * (x * y) / (size * (9 + k + 2 * c))))
        out.append(np.clip(np.round(np.stack(ch, -1) * 255), 0, 255).astype(np.uint8))
    return torch.from_numpy(np.stack(out)).permute(0, 3, 1, 2).float() / 255


# Reference values from a re-implementation of MindEye2's formulas with numpy and scikit-image only (scratch code,
# not in this repository): bilinear resize written out as weight matrices — torch's align_corners=False rule
# without antialiasing (MindEye2's torch 2.0.1 / torchvision 0.15), or PIL's triangle filter widened by the scale
# (antialiased; equal to PIL's own float resize to 7e-8) — then, as MindEye2's final_evaluations, np.corrcoef of
# the flattened float32 images and skimage 0.26 structural_similarity(rgb2gray(rec), rgb2gray(gt),
# gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0) on float32 grayscale.
MINDEYE2_REFERENCE = {
    (40, False): {"PixCorr": [0.3060349318, 0.3301159731, 0.3338966487, 0.3481468340],
                  "SSIM": [0.2496437613, 0.2729872593, 0.3021382049, 0.3147152972]},
    (40, True): {"PixCorr": [0.3295360294, 0.3986064326, 0.4542967953, 0.5288128177],
                 "SSIM": [0.2691956255, 0.3267326772, 0.3980516059, 0.4595547263]},
    (140, False): {"PixCorr": [0.3060694598, 0.3300428552, 0.3334236456, 0.3475865938],
                   "SSIM": [0.1908000470, 0.1149855257, 0.0858741448, 0.0716126376]},
}
MINDEYE2_REFERENCE[(140, True)] = MINDEYE2_REFERENCE[(140, False)]   # upscaling: antialiasing changes nothing


@pytest.mark.parametrize("size, antialias", sorted(MINDEYE2_REFERENCE))
def test_pixcorr_and_ssim_equal_mindeye2_reimplementation(size, antialias):
    gt, rec = _formula_images("gt"), _formula_images("rec")
    ref = MINDEYE2_REFERENCE[(size, antialias)]
    # the reference ran in float32 (as MindEye2 did), eegvision in float64: equal to 1e-6
    np.testing.assert_allclose(pixcorr(gt, rec, size=size, antialias=antialias).numpy(), ref["PixCorr"], atol=1e-6)
    np.testing.assert_allclose(ssim(gt, rec, size=size, antialias=antialias).numpy(), ref["SSIM"], atol=1e-6)
    with resize_antialias(antialias):                      # the context switch gives the same numbers
        np.testing.assert_allclose(ssim(gt, rec, size=size).numpy(), ref["SSIM"], atol=1e-6)


def test_mindeye2_environment_matters_when_downscaling():
    # without antialiasing the 96 → 40 px downscale aliases: SSIM moves by more than 0.1 on these images
    gap = np.abs(np.subtract(MINDEYE2_REFERENCE[(40, True)]["SSIM"], MINDEYE2_REFERENCE[(40, False)]["SSIM"]))
    assert gap.max() > 0.1
    x = _formula_images("gt", n=1)
    assert not torch.allclose(resize(x, 40), resize(x, 40, antialias=False))
    with resize_antialias(False):
        torch.testing.assert_close(resize(x, 40), resize(x, 40, antialias=False), rtol=0, atol=0)
        assert not torch.allclose(resize(x, 40, antialias=True), resize(x, 40))   # explicit beats the context
    torch.testing.assert_close(resize(x, 40), resize(x, 40, antialias=True), rtol=0, atol=0)


def test_pixcorr_equals_numpy_pearson():
    gt, rec = _smooth_images(4, 32, 2), _smooth_images(4, 32, 3)
    got = pixcorr(gt, rec, size=40)
    a, b = resize(gt, 40).flatten(1).double().numpy(), resize(rec, 40).flatten(1).double().numpy()
    ref = [np.corrcoef(a[i], b[i])[0, 1] for i in range(4)]
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-10)
    np.testing.assert_allclose(pixcorr(gt, gt, size=40).numpy(), 1.0, atol=1e-12)
    with pytest.raises(ValueError, match="paired"):
        pixcorr(gt, rec[:3])


def test_to_float_batch_base_resize():
    imgs = [torch.randint(0, 256, (3, 20, 20), dtype=torch.uint8), torch.randint(0, 256, (3, 30, 30),
                                                                                 dtype=torch.uint8)]
    assert to_float_batch(imgs, base_size=16).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="different sizes"):
        to_float_batch(imgs, base_size=None)


# ---------------------------------------------------------------------------- feature metrics
def _brute_two_way(real, pred):
    n = len(real)
    out = []
    for j in range(n):
        r_jj = np.corrcoef(real[j], pred[j])[0, 1]
        out.append(sum(np.corrcoef(real[i], pred[j])[0, 1] < r_jj for i in range(n) if i != j) / (n - 1))
    return np.array(out)


def test_two_way_and_distance_against_brute_force():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(12, 50))
    pred = real + rng.normal(scale=6.0, size=(12, 50))
    corr = correlation_matrix(torch.tensor(real), torch.tensor(pred))
    np.testing.assert_allclose(corr.numpy(), np.corrcoef(real, pred)[:12, 12:], atol=1e-10)
    got = two_way_identification(corr, np.arange(12)).numpy()
    np.testing.assert_allclose(got, _brute_two_way(real, pred))
    assert 0.0 < got.mean() < 1.0
    dist = correlation_distance(corr, np.arange(12)).numpy()
    np.testing.assert_allclose(dist, [scipy_correlation(real[i], pred[i]) for i in range(12)], atol=1e-10)
    same = correlation_matrix(torch.tensor(real), torch.tensor(real))
    assert two_way_identification(same, np.arange(12)).mean() == 1.0
    np.testing.assert_allclose(correlation_distance(same, np.arange(12)).numpy(), 0.0, atol=1e-12)
    # several reconstructions of one concept: each is compared with the N - 1 other ground truths
    target = np.array([3, 3, 7])
    corr3 = correlation_matrix(torch.tensor(real), torch.tensor(pred[[3, 5, 7]]))
    ref = [sum(np.corrcoef(real[i], p)[0, 1] < np.corrcoef(real[t], p)[0, 1] for i in range(12) if i != t) / 11
           for t, p in zip(target, pred[[3, 5, 7]])]
    np.testing.assert_allclose(two_way_identification(corr3, target).numpy(), ref)


def _features_only(model):
    return {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}


def _tiny_clip(path):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                  "num_attention_heads": 2, "vocab_size": 64, "max_position_embeddings": 16},
                     vision_config={"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
                                    "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
                     projection_dim=8)
    CLIPModel(cfg).eval().save_pretrained(path)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    import torchvision.models as tvm

    d = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)  # heads are not used by the metrics: saving the feature layers keeps the test fast
    torch.save(_features_only(tvm.alexnet(weights=None)), d / "alexnet.pth")
    torch.save(_features_only(tvm.efficientnet_b1(weights=None)), d / "efficientnet_b1.pth")
    _tiny_clip(d / "clip-vit-large-patch14")
    return d


def test_feature_extractors_match_direct_forward(weights):
    import torchvision.models as tvm
    from transformers import CLIPModel

    imgs = _smooth_images(2, 64, 5)
    fx = FeatureExtractors(weights, ["AlexNet(2)", "AlexNet(5)", "CLIP", "EffNet-B"], device="cpu")
    feats = fx(imgs)
    alex = tvm.alexnet(weights=None)
    alex.load_state_dict(torch.load(weights / "alexnet.pth"), strict=False)
    alex.eval()
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    x = (resize(imgs, 256) - mean) / std
    with torch.no_grad():
        torch.testing.assert_close(feats["AlexNet(2)"], alex.features[:5](x).flatten(1))
        torch.testing.assert_close(feats["AlexNet(5)"], alex.features[:12](x).flatten(1))
        eff = tvm.efficientnet_b1(weights=None)
        eff.load_state_dict(torch.load(weights / "efficientnet_b1.pth"), strict=False)
        eff.eval()
        x = (resize(imgs, 255) - mean) / std
        torch.testing.assert_close(feats["EffNet-B"], eff.avgpool(eff.features(x)).flatten(1))
        clip = CLIPModel.from_pretrained(weights / "clip-vit-large-patch14").eval()
        cm = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
        cs = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
        ref = clip.get_image_features(pixel_values=(resize(imgs, 32) - cm) / cs)
        ref = ref if torch.is_tensor(ref) else ref.pooler_output
        torch.testing.assert_close(feats["CLIP"], ref)
    assert feats["AlexNet(2)"].shape == (2, 192 * 31 * 31)


def test_inception_and_swav_loading(tmp_path):
    import torchvision.models as tvm

    torch.manual_seed(0)
    torch.save(tvm.inception_v3(weights=None, aux_logits=True, init_weights=False).state_dict(),
               tmp_path / "inception_v3_google-0cc3c7bd.pth")  # torchvision's own file name is accepted
    r50 = tvm.resnet50(weights=None)
    hub = {f"module.{k}": v for k, v in r50.state_dict().items() if not k.startswith("fc.")}
    hub["module.projection_head.0.weight"] = torch.zeros(4, 2048)
    hub["module.prototypes.weight"] = torch.zeros(3, 4)
    torch.save({"state_dict": hub}, tmp_path / "swav_800ep_pretrain.pth.tar")
    convert_swav_checkpoint(tmp_path / "swav_800ep_pretrain.pth.tar", tmp_path / "swav_resnet50.pth")
    fx = FeatureExtractors(tmp_path, ["Inception", "SwAV"], device="cpu")
    imgs = _smooth_images(1, 32, 6)
    feats = fx(imgs)
    assert feats["Inception"].shape == (1, 2048) and feats["SwAV"].shape == (1, 2048)
    r50.eval()
    x = (resize(imgs, 224) - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor(
        [0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        body = torch.nn.Sequential(*list(r50.children())[:-1])
        torch.testing.assert_close(feats["SwAV"], body(x).flatten(1), atol=1e-5, rtol=1e-4)


def test_missing_weights_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="alexnet.pth"):
        FeatureExtractors(tmp_path, ["AlexNet(2)"], device="cpu")
    torch.save({"bogus": torch.zeros(1)}, tmp_path / "alexnet.pth")
    with pytest.raises(ValueError, match="does not hold torchvision alexnet"):
        FeatureExtractors(tmp_path, ["AlexNet(2)"], device="cpu")


# ---------------------------------------------------------------------------- folders, pairing, table
CONCEPTS = ["aircraft_carrier", "antelope", "backscratcher", "balance_beam", "bamboo"]


def _write_png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _make_gt(root, size=32):
    imgs = (_smooth_images(len(CONCEPTS), size, 10).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    for i, c in enumerate(CONCEPTS):  # THINGS layout: 1-based NNNNN_concept folders, one image each
        _write_png(root / f"{i + 1:05d}_{c}" / f"{c}_01b.jpg".replace(".jpg", ".png"), imgs[i])
    return imgs


def _make_recon(root, images_per_concept, rows_order=None, names=None, legacy=False):
    """A manifest as `reconstruct` writes it (0-based index, concept table), or as 0.1.0 did (1-based, no table)."""
    base = 1 if legacy else 0
    rows = []
    for i, c in enumerate(CONCEPTS):
        for s, arr in enumerate(images_per_concept[i]):
            name = names(i, s) if names else f"images/{i + base:05d}_{c}/{s}.png"
            _write_png(root / name, arr)
            rows.append({"file": name, "subject": "sub-08", "concept_index": i + base, "concept": c,
                         "sample": s, "seed": 100 * i + s})
    if rows_order is not None:
        rows = [rows[k] for k in rows_order]
    header = {} if legacy else {"format_version": 2, "concepts": ConceptTable.from_names(CONCEPTS).to_json()}
    (root / "manifest.json").write_text(json.dumps({**header, "images": rows}))
    return rows


def _table_value(res, metric, rule="first", subject="sub-08"):
    t = res.table
    return float(t[(t.metric == metric) & (t.rule == rule) & (t.subject == subject)]["value"].iloc[0])


def test_identical_sets_score_perfectly(tmp_path, weights):
    gt = _make_gt(tmp_path / "gt")
    _make_recon(tmp_path / "rec", [[gt[i], gt[i]] for i in range(len(CONCEPTS))])
    res = score_images(tmp_path / "gt", tmp_path / "rec", weights_dir=weights,
                       metrics=["PixCorr", "SSIM", "AlexNet(2)", "AlexNet(5)", "CLIP", "EffNet-B", "GenAcc top-1"],
                       base_size=64, device="cpu")
    for rule in ("first", "mean"):
        for m in ("PixCorr", "SSIM", "AlexNet(2)", "AlexNet(5)", "CLIP", "GenAcc top-1"):
            assert _table_value(res, m, rule) == pytest.approx(1.0, abs=1e-9), (m, rule)
        assert _table_value(res, "EffNet-B", rule) == pytest.approx(0.0, abs=1e-9)
    t = res.table.set_index(["subject", "rule", "metric"])
    assert t.loc[("sub-08", "first", "AlexNet(2)"), "chance"] == 0.5
    assert t.loc[("sub-08", "first", "EffNet-B"), "direction"] == "↓"
    assert t.loc[("sub-08", "first", "PixCorr"), "chance"] < 0.9
    assert t.loc[("sub-08", "mean", "SSIM"), "n_images"] == 10
    assert set(res.table["base_size"]) == {64}


def test_random_sets_match_brute_force_and_rules(tmp_path, weights):
    gt = _make_gt(tmp_path / "gt")
    rng = np.random.default_rng(1)
    recon = [[rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(2)] for _ in CONCEPTS]
    _make_recon(tmp_path / "rec", recon)
    res = score_images(tmp_path / "gt", tmp_path / "rec", weights_dir=weights,
                       metrics=["PixCorr", "SSIM", "AlexNet(2)"], base_size=None, device="cpu")
    g = torch.tensor(gt).permute(0, 3, 1, 2).float() / 255
    per_sample = []
    fx = FeatureExtractors(weights, ["AlexNet(2)"], device="cpu")
    for s in range(2):
        r = torch.tensor(np.stack([recon[i][s] for i in range(5)])).permute(0, 3, 1, 2).float() / 255
        two = _brute_two_way(fx(g)["AlexNet(2)"].double().numpy(), fx(r)["AlexNet(2)"].double().numpy())
        per_sample.append({"PixCorr": pixcorr(g, r).numpy(), "SSIM": ssim(g, r).numpy(), "AlexNet(2)": two})
    for m in ("PixCorr", "SSIM", "AlexNet(2)"):
        assert _table_value(res, m, "first") == pytest.approx(per_sample[0][m].mean(), abs=1e-9)
        both = (per_sample[0][m] + per_sample[1][m]) / 2
        assert _table_value(res, m, "mean") == pytest.approx(both.mean(), abs=1e-9)
    assert "| mean ± std |" in format_table(res.table) and "PixCorr ↑" in format_table(res.table)
    written = write_results(res, tmp_path / "table.csv")
    assert pd.read_csv(written[0]).shape[0] == len(res.table) and written[1].is_file()


def test_pairing_ignores_file_names_and_listing_order(tmp_path):
    gt = _make_gt(tmp_path / "gt")
    rng = np.random.default_rng(2)
    recon = [[np.clip(gt[i].astype(int) + rng.integers(-60, 60, gt[i].shape), 0, 255).astype(np.uint8)]
             for i in range(len(CONCEPTS))]
    _make_recon(tmp_path / "a", recon)
    # same images under scrambled file names (listing order reversed) and a shuffled manifest
    perm = [3, 0, 4, 1, 2]
    _make_recon(tmp_path / "b", recon, rows_order=perm, names=lambda i, s: f"x/{'zyxwv'[i]}_{perm[i]}.png")
    # a manifest of 0.1.0 (1-based THINGS numbers, no concept table) is read through its concept names
    _make_recon(tmp_path / "c", recon, legacy=True)
    ra = score_images(tmp_path / "gt", tmp_path / "a", base_size=None)
    rb = score_images(tmp_path / "gt", tmp_path / "b", base_size=None)
    rc = score_images(tmp_path / "gt", tmp_path / "c", base_size=None)
    for m in ("PixCorr", "SSIM"):
        assert _table_value(ra, m) == pytest.approx(_table_value(rb, m), abs=1e-12)
        assert _table_value(ra, m) == pytest.approx(_table_value(rc, m), abs=1e-12)
        assert _table_value(ra, m) > 0.5
    assert set(ra.table["pairing"]) == {"concept table"}
    assert set(rc.table["pairing"]) == {"concept name (manifest without concept table)"}
    assert rc.per_image["concept_index"].tolist() == [0, 1, 2, 3, 4]
    # pairing by listing order would have been wrong: check the brute-force per-concept values
    g = torch.tensor(gt).permute(0, 3, 1, 2).float() / 255
    r = torch.tensor(np.stack([x[0] for x in recon])).permute(0, 3, 1, 2).float() / 255
    assert _table_value(rb, "PixCorr") == pytest.approx(pixcorr(g, r).mean().item(), abs=1e-9)


def test_pairing_errors(tmp_path):
    gt = _make_gt(tmp_path / "gt")
    df = scan_ground_truth(tmp_path / "gt")  # folders 00001_..00005_: concepts 0..4 (sorted position)
    assert list(df["concept_index"]) == [0, 1, 2, 3, 4] and df["concept"][0] == "aircraft_carrier"
    bad = pd.DataFrame({"concept_index": [0, 1], "concept": ["antelope", "aircraft_carrier"]})
    with pytest.raises(ValueError, match="concept 0 is 'antelope' in the reconstructions and 'aircraft_carrier' in "
                                         "the ground truth; concept 1 is 'aircraft_carrier'"):
        pair_reconstructions(df, bad)
    with pytest.raises(ValueError, match=r"concept index\(es\) \[40\] have no ground-truth image"):
        pair_reconstructions(df, pd.DataFrame({"concept_index": [40], "concept": [None]}))
    with pytest.raises(FileNotFoundError, match="manifest"):
        score_images(tmp_path / "gt", tmp_path)
    # a manifest numbered from 1 with a concept table is not shifted to fit: the names say what is wrong
    one_based = [{"file": f"{i}.png", "concept_index": i + 1, "concept": c} for i, c in enumerate(CONCEPTS[:4])]
    (tmp_path / "shifted").mkdir()
    (tmp_path / "shifted" / "manifest.json").write_text(json.dumps(
        {"format_version": 2, "concepts": ConceptTable((1, 2, 3, 4), tuple(CONCEPTS[:4])).to_json(),
         "images": one_based}))
    with pytest.raises(ValueError, match="concept 1 is 'aircraft_carrier' in the reconstructions and 'antelope'"):
        score_images(tmp_path / "gt", tmp_path / "shifted")
    shutil.copy(next((tmp_path / "gt" / "00001_aircraft_carrier").iterdir()),
                tmp_path / "gt" / "00001_aircraft_carrier" / "extra.png")
    with pytest.raises(ValueError, match="exactly one"):
        scan_ground_truth(tmp_path / "gt")
    del gt


def test_mindeye2_option_and_distance_chance_against_wrong_ground_truth(tmp_path, weights):
    """antialias=False (MindEye2's environment) reaches every resize and is recorded; EffNet-B's chance is a
    reconstruction scored against the next concept's ground truth, as PixCorr's is."""
    gt = _make_gt(tmp_path / "gt")
    rng = np.random.default_rng(4)
    recon = [[np.clip(gt[i].astype(int) + rng.integers(-50, 50, gt[i].shape), 0, 255).astype(np.uint8)
              for _ in range(2)] for i in range(len(CONCEPTS))]
    _make_recon(tmp_path / "rec", recon)
    res = score_images(tmp_path / "gt", tmp_path / "rec", weights_dir=weights, metrics=["SSIM", "EffNet-B"],
                       base_size=16, device="cpu", antialias=False)   # 32 → 16 px: a downscale
    assert set(res.table["antialias"]) == {False} and res.protocol["antialias"] is False
    assert "without antialiasing" in format_table(res.table)
    def as_batch(arrays):
        return to_float_batch([torch.from_numpy(a).permute(2, 0, 1) for a in arrays], base_size=16, antialias=False)

    g, r = as_batch(gt), as_batch([x[0] for x in recon])
    assert _table_value(res, "SSIM") == pytest.approx(ssim(g, r, antialias=False).mean().item(), abs=1e-12)
    fx = FeatureExtractors(weights, ["EffNet-B"], device="cpu", antialias=False)
    fg, fr = fx(g)["EffNet-B"].double().numpy(), fx(r)["EffNet-B"].double().numpy()
    chance = res.table.set_index(["subject", "rule", "metric"]).loc[("sub-08", "first", "EffNet-B"), "chance"]
    wrong = [scipy_correlation(fg[(i + 1) % 5], fr[i]) for i in range(5)]
    assert chance == pytest.approx(np.mean(wrong), abs=1e-6)
    between_gts = np.mean([scipy_correlation(fg[i], fg[j]) for i in range(5) for j in range(5) if i != j])
    assert abs(chance - between_gts) > 1e-3                   # not the old definition (GT vs GT)
    default = score_images(tmp_path / "gt", tmp_path / "rec", metrics=["SSIM"], base_size=16)
    assert set(default.table["antialias"]) == {True}
    assert abs(_table_value(default, "SSIM") - _table_value(res, "SSIM")) > 1e-3
