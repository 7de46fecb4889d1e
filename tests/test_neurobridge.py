"""NeuroBridge's two training options: the EEG smoothing of the training data (FitConfig.eeg_smoothing, as
module/eeg_augmentation.py RandomSmooth and module/dataset.py --frozen_eeg_prior of feroooooo/NeuroBridge@6144203
do it) and the trainable EEG and image projectors (FitConfig.projector, module/projector.py ProjectorLinear), whose
projected space every score and export of a saved run uses."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from decode_helpers import CH_NAMES, FakeStore, make_problem, patch_open_data
from safetensors.torch import load_file
from typer.testing import CliRunner

from eegvision.cli.main import app
from eegvision.data.augment import SmoothedTrials, moving_average
from eegvision.data.dataset import EEGDataset
from eegvision.features.files import load_features
from eegvision.models.image_projector import ImageProjector
from eegvision.training.config import FitConfig
from eegvision.training.fitting import fit
from eegvision.training.run import embed_run, evaluate_run, load_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")

RAMP = np.array([1, 2, 4, 8, 16, 32], dtype=np.float32)
# RandomSmooth(kernel_size=5): value t is the mean of samples max(0, t-2) .. min(5, t+2), by hand:
# (1+2+4)/3, (1+2+4+8)/4, (1+2+4+8+16)/5, (2+4+8+16+32)/5, (4+8+16+32)/4, (8+16+32)/3
RAMP_SMOOTH = np.array([7 / 3, 15 / 4, 31 / 5, 62 / 5, 15, 56 / 3], dtype=np.float32)
# numpy.random.RandomState(0).random_sample(), the first 12 draws (np.random.seed(0); np.random.rand() each):
SEED0 = [0.549, 0.715, 0.603, 0.545, 0.424, 0.646, 0.438, 0.892, 0.964, 0.383, 0.792, 0.529]


def _store() -> FakeStore:
    """One subject, 3 training conditions x 2 identical repetitions; channel c of condition k is (k + 1) (c + 1)
    RAMP, so smoothing a channel scales RAMP_SMOOTH the same way."""
    arrays, meta = {}, {}
    for split, n_cond in (("training", 3), ("test", 2)):
        scale = np.arange(1, n_cond + 1)[:, None, None, None] * np.arange(1, len(CH_NAMES) + 1)[None, None, :, None]
        arrays[("sub-01", split)] = (scale * np.ones((n_cond, 2, 1, 1)) * RAMP).astype(np.float32)
        meta[("sub-01", split)] = pd.DataFrame([{"split": split, "condition": c, "repetition": r, "concept_index": c,
                                                 "concept": f"{split}_{c}", "image_index": c}
                                                for c in range(n_cond) for r in range(2)])
    names = {"training": ["training_0", "training_1", "training_2"], "test": ["test_0", "test_1"]}
    return FakeStore(arrays, meta, names, n_times=len(RAMP))


def _expected(masks: list[list[bool]], conditions: list[int]) -> np.ndarray:
    """Sample i = condition conditions[i]; channels P7 (scale 1) and P3 (scale 2); smoothed where masks[i] says."""
    out = []
    for (m0, m1), c in zip(masks, conditions):
        out.append([(c + 1) * (RAMP_SMOOTH if m0 else RAMP), (c + 1) * 2 * (RAMP_SMOOTH if m1 else RAMP)])
    return np.array(out, dtype=np.float32)


def test_moving_average_is_neurobridges_with_shrinking_edges():
    np.testing.assert_allclose(moving_average(RAMP, 5), RAMP_SMOOTH, rtol=1e-6)
    # an even kernel averages kernel + 1 samples, as their left/right bounds do: kernel 2 is kernel 3
    np.testing.assert_allclose(moving_average(RAMP, 2), [1.5, 7 / 3, 14 / 3, 28 / 3, 56 / 3, 24], rtol=1e-6)
    np.testing.assert_array_equal(moving_average(RAMP, 1), RAMP)


def test_frozen_smoothing_draws_channels_as_neurobridge_loads_the_data():
    store = _store()
    kw = {"channels": ["P7", "P3"]}
    # averaged: draws (condition, channel) in order; p = 0.6 smooths draws 0.549, 0.545, 0.424 -> these channels
    averaged = SmoothedTrials(EEGDataset(store, ["sub-01"], "training", average=True, **kw), 5, 0.6, seed=0)
    assert averaged.mask.tolist() == [[True, False], [False, True], [True, False]]
    got = averaged.get_batch(np.arange(3))["eeg"].numpy()
    np.testing.assert_allclose(got, _expected(averaged.mask.tolist(), [0, 1, 2]), rtol=1e-6)
    # validation concepts held out: condition 2 keeps its own draw (made over every condition of the split)
    fitting = SmoothedTrials(EEGDataset(store, ["sub-01"], "training", average=True, conditions=[0, 2], **kw),
                             5, 0.6, seed=0)
    assert fitting.mask.tolist() == [[True, False], [True, False]]
    # single trials: draws (condition, repetition, channel), their loop order
    trials = SmoothedTrials(EEGDataset(store, ["sub-01"], "training", average=False, **kw), 5, 0.6, seed=0)
    assert trials.mask.tolist() == [[s < 0.6 for s in SEED0[i:i + 2]] for i in range(0, 12, 2)]
    assert trials.mask.tolist() == [[True, False], [False, True], [True, False], [True, False], [False, True],
                                    [False, True]]
    # frozen: every read (every epoch) gives the same data
    first = trials.get_batch(np.array([5, 0, 3]))["eeg"]
    assert torch.equal(first, trials.get_batch(np.array([5, 0, 3]))["eeg"])
    np.testing.assert_allclose(first.numpy(), _expected([[False, True], [True, False], [True, False]], [2, 0, 1]),
                               rtol=1e-6)


def test_redrawn_smoothing_draws_per_read_and_never_touches_validation_or_test(monkeypatch):
    from eegvision.training.unit import _datasets

    store = _store()
    base = EEGDataset(store, ["sub-01"], "training", average=True, channels=["P7", "P3"])
    redrawn = SmoothedTrials(base, 5, 0.5, frozen=False, seed=3)
    assert redrawn.mask is None
    draws = [redrawn.draw(np.array([0, 1, 2, i % 3])) for i in range(8)]
    assert any(not np.array_equal(draws[0][:3], d[:3]) for d in draws[1:])  # a batch's draw depends on the batch
    np.testing.assert_array_equal(redrawn.draw(np.array([0, 1, 2, 0])), draws[0])  # ... and on nothing else
    cfg = FitConfig(data="x", subjects=["sub-01"], encoder="eegproject", val_fraction=0.34, average_train=True,
                    eeg_smoothing={"channel_probability": 1.0})
    assert cfg.eeg_smoothing == {"kernel": 5, "channel_probability": 1.0, "frozen": True}
    unit = {"name": "sub-01", "train_subjects": ["sub-01"], "test_subjects": ["sub-01"]}
    data = _datasets(cfg, store, unit)
    train = data["train"].get_batch(np.arange(len(data["train"])))
    conds = train["condition"].numpy()
    assert isinstance(data["train"], SmoothedTrials) and data["train"].mask.all()
    np.testing.assert_allclose(train["eeg"][:, 0].numpy(), (conds[:, None] + 1) * RAMP_SMOOTH, rtol=1e-6)
    for split in ("val", "test"):
        ds = data[split] if split == "val" else data["test"]["sub-01"]
        assert type(ds) is EEGDataset
        batch = ds.get_batch(np.arange(len(ds)))
        np.testing.assert_array_equal(batch["eeg"][:, 0].numpy(), (batch["condition"].numpy()[:, None] + 1) * RAMP)


def test_options_refuse_what_cannot_work():
    with pytest.raises(ValueError, match=r"projector needs its 'dim'"):
        FitConfig(encoder="eegproject", projector={})
    with pytest.raises(ValueError, match=r"projector key 'size' is not in projector"):
        FitConfig(encoder="eegproject", projector={"size": 512})
    with pytest.raises(ValueError, match=r"cannot be combined with closed-form encoder"):
        FitConfig(encoder="ridge", projector={"dim": 8})
    with pytest.raises(ValueError, match=r"encoder 'auto'"):
        FitConfig(projector={"dim": 8})
    with pytest.raises(ValueError, match=r"extra target heads"):
        FitConfig(encoder="stconv", projector={"dim": 8}, targets=[{"train": "a.train.safetensors"}])
    with pytest.raises(ValueError, match=r"channel_probability must be a number in \[0, 1\]; got 1.5"):
        FitConfig(encoder="stconv", eeg_smoothing={"channel_probability": 1.5})
    with pytest.raises(ValueError, match=r"mix_repetitions"):
        FitConfig(encoder="stconv", eeg_smoothing={}, mix_repetitions=True)
    with pytest.raises(ValueError, match=r"eeg_smoothing cannot apply"):
        FitConfig(encoder="ridge", eeg_smoothing={})
    assert sum(p.numel() for p in ImageProjector(1024, 512).parameters()) == 524_800  # NeuroBridge's, measured


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    root = tmp_path_factory.mktemp("nb")
    store, data = make_problem(root, n_subjects=1, n_train_concepts=12, n_test=8, n_times=20)
    return store, data, root


def test_projected_run_scores_and_exports_in_the_projected_space(problem, monkeypatch):
    store, data, root = problem
    patch_open_data(monkeypatch, store)
    cfg = FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", epochs=2, batch_size=8, lr=3e-3,
                    val_fraction=0.2, eval_ks=[2, 8], eval_methods=["exact"], projector={"dim": 4},
                    eeg_smoothing={}, average_train=True, learn_temperature=False, normalize_embeddings="image")
    result = fit(cfg, root / "run")
    unit = result.run.unit()
    # the checkpoint holds both projections: EEG Linear(16, 4) inside the encoder, image Linear(16, 4) beside it
    enc = load_file(unit.path / "encoder" / "model.safetensors")
    img = load_file(unit.path / "image_projector" / "model.safetensors")
    assert enc["projection.weight"].shape == (4, 16) and enc["projection.bias"].shape == (4,)
    assert set(img) == {"linear.weight", "linear.bias"} and img["linear.weight"].shape == (4, 16)
    assert json.loads((unit.path / "image_projector" / "config.json").read_text())["in_dim"] == 16
    # the recorded test features are image_projector(test features), by hand from the saved weights
    raw = load_features(data / "features" / "test.safetensors").image
    recorded = load_features(unit.test_features_path)
    expected = raw @ img["linear.weight"].T + img["linear.bias"]
    torch.testing.assert_close(recorded.image, expected, rtol=1e-5, atol=1e-6)
    assert recorded.text is None and recorded.image.shape == (8, 4)
    # the fit scored its 4-d test embeddings against them; evaluate on the saved run gives the same numbers
    emb = unit.read_test_embeddings()["sub-01"]
    assert emb.shape == (8, 4)
    fitted = {(r["k"], r["modality"]): r["top1"] for r in result.rows}
    assert set(m for _, m in fitted) == {"image"}  # no text rows: the projectors are trained on images only
    sims = torch.nn.functional.normalize(emb, dim=1) @ torch.nn.functional.normalize(expected, dim=1).T
    assert fitted[(8, "image")] == pytest.approx(float((sims.argmax(1) == torch.arange(8)).float().mean()))
    again = {(r["k"], r["modality"]): r["top1"] for r in evaluate_run(root / "run", write=False).rows}
    assert again == fitted
    # embed / load_run re-embed with the projected encoder; the loaded image projector is the saved one
    out = embed_run(root / "run", data, root / "emb.safetensors")
    torch.testing.assert_close(out.embeddings["sub-01"], emb, rtol=1e-5, atol=1e-6)
    loaded = load_run(root / "run")
    torch.testing.assert_close(loaded.image_projector.project_features(load_features(
        data / "features" / "test.safetensors")).image, recorded.image)


def test_fit_preset_neurobridge_runs_without_partial_preset(problem, monkeypatch):
    store, data, root = problem
    patch_open_data(monkeypatch, store)
    run = root / "run-nb"
    res = CliRunner().invoke(app, ["fit", "--data", str(data), "--subject", "sub-01", "--out", str(run), "--preset",
                                   "neurobridge", "--epochs", "1", "--batch-size", "8", "--val-fraction", "0.2",
                                   "--quiet"])
    assert res.exit_code == 0, res.output
    recorded = json.loads((run / "config.json").read_text())["fit"]
    assert recorded["preset"] == "neurobridge"
    assert recorded["projector"] == {"dim": 512}
    assert recorded["eeg_smoothing"] == {"kernel": 5, "channel_probability": 0.3, "frozen": True}
    assert load_features(run / "test_features.safetensors").image.shape == (8, 512)
