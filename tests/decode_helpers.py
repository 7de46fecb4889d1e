"""Tiny synthetic decoding problem shared by the training/CLI tests.

EEG carries signal: each trial is ``image_feature @ mixing`` reshaped to (channels, times) plus
noise, so a linear encoder can recover the CLIP-like features and retrieval beats chance.
The store is an in-memory object with the read interface of ``docs/design.md`` (written to a
real store directory with ``StoreWriter`` once that exists is not needed: ``fit`` only calls
``open_data``, which the tests patch).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from eegvision.store.base import Store

CH_NAMES = ["P7", "P3", "Pz", "PO3", "O1", "Oz"]


class FakeStore:
    """In-memory store: ``arrays[(subject, split)]`` of shape (cond, rep, chan, time)."""

    def __init__(self, arrays, metadata, concepts, sfreq=100.0, n_times=20):
        self._arrays, self._meta, self._concepts = arrays, metadata, concepts
        self.ch_names = list(CH_NAMES)
        self.sfreq = sfreq
        self.times = np.arange(n_times) / sfreq
        self.subjects = sorted({s for s, _ in arrays})

    def splits(self, subject):
        return [sp for (s, sp) in self._arrays if s == subject]

    def array(self, subject, split):
        a = self._arrays[(subject, split)]
        a = a.view()
        a.setflags(write=False)
        return a

    def metadata(self, subject, split):
        return self._meta[(subject, split)].assign(subject=subject)

    def concepts(self, split):
        return list(self._concepts[split])

    def images(self, split):
        return None

    concept_table = Store.concept_table  # built on the methods above, as for every store


def make_problem(root: Path, *, real_store=False, n_subjects=3, n_train_concepts=30, images_per_concept=2, n_test=20,
                 train_reps=4, test_reps=6, dim=16, noise=1.0, seed=0, n_times=20):
    """Build a FakeStore and feature files under ``root/store/features``; returns (store, data_dir)."""
    from eegvision.features.files import save_features

    rng = np.random.default_rng(seed)
    n_ch, n_t = len(CH_NAMES), n_times
    concept_vec = {"training": rng.standard_normal((n_train_concepts, dim)),
                   "test": rng.standard_normal((n_test, dim))}
    feats, meta, arrays, names = {}, {}, {}, {}
    for split, per in (("training", images_per_concept), ("test", 1)):
        cv = concept_vec[split]
        cond_concept = np.repeat(np.arange(len(cv)), per)
        img = cv[cond_concept] + 0.3 * rng.standard_normal((len(cond_concept), dim))
        img /= np.linalg.norm(img, axis=1, keepdims=True)
        feats[split] = (img.astype(np.float32), (cv / np.linalg.norm(cv, axis=1, keepdims=True)).astype(np.float32))
        names[split] = [f"{split[:4]}_concept_{i}" for i in range(len(cv))]
        reps = train_reps if split == "training" else test_reps
        rows = [{"split": split, "condition": c, "repetition": r, "concept_index": int(cond_concept[c]),
                 "concept": names[split][cond_concept[c]], "image_index": c, "image_path": f"{split}/{c}.jpg"}
                for c in range(len(cond_concept)) for r in range(reps)]
        for s in range(n_subjects):
            meta[(f"sub-{s + 1:02d}", split)] = pd.DataFrame(rows)
    mixing = rng.standard_normal((dim, n_ch * n_t))
    for s in range(n_subjects):
        mix_s = mixing + 0.2 * rng.standard_normal(mixing.shape)
        for split in ("training", "test"):
            img = feats[split][0]
            reps = train_reps if split == "training" else test_reps
            clean = (img @ mix_s).reshape(len(img), 1, n_ch, n_t)
            arr = clean + noise * rng.standard_normal((len(img), reps, n_ch, n_t))
            arrays[(f"sub-{s + 1:02d}", split)] = arr.astype(np.float16)
    store = FakeStore(arrays, meta, names, n_times=n_t)
    data_dir = Path(root) / "store"
    if real_store:  # a store directory on disk, written by eegvision.store.disk.StoreWriter
        from eegvision.store.disk import open_store
        from eegvision.store.writer import StoreWriter

        with StoreWriter(data_dir, dataset="fake", ch_names=store.ch_names, sfreq=store.sfreq,
                         times=store.times) as w:
            for (subject, split), arr in sorted(arrays.items()):
                table = meta[(subject, split)].drop_duplicates("condition")
                w.add(subject=subject, split=split, data=arr,
                      metadata=table[["concept_index", "concept", "image_index", "image_path"]].reset_index(drop=True))
        store = open_store(data_dir)
    (data_dir / "features").mkdir(parents=True, exist_ok=True)
    for split, fname in (("training", "train"), ("test", "test")):
        img, txt = feats[split]
        save_features(data_dir / "features" / f"{fname}.safetensors", torch.from_numpy(img), torch.from_numpy(txt),
                      normalized=True, model="fake-clip", pretrained="none", layer="final", transform="none",
                      split=split, concepts=store.concept_table(split))
    return store, data_dir


def patch_open_data(monkeypatch, store):
    """Make ``fit``, ``finetune``, ``embed_run`` ... open ``store`` whatever DATA path they get.

    The library looks ``open_data`` up in :mod:`eegvision.data.sources` when it is called, so that is where it
    is patched.
    """
    from eegvision.data import sources

    monkeypatch.setattr(sources, "open_data", lambda path: store)


class TensorData:
    """A minimal data source (``len`` + vectorised ``get_batch``) over in-memory tensors."""

    def __init__(self, eeg, condition, concept, subject=None):
        self.eeg, self.condition, self.concept = eeg, condition, concept
        self.subject = subject if subject is not None else torch.zeros(len(eeg), dtype=torch.long)

    def __len__(self):
        return len(self.eeg)

    def get_batch(self, indices):
        i = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        return {"eeg": self.eeg[i], "subject": self.subject[i], "condition": self.condition[i],
                "concept": self.concept[i], "image": self.condition[i], "repetition": torch.zeros_like(i)}


class LinearEncoder(torch.nn.Module):
    """Deterministic (no dropout, no batch norm) encoder for exact DDP comparisons."""

    def __init__(self, n_in, n_out):
        super().__init__()
        self.proj = torch.nn.Linear(n_in, n_out)

    def forward(self, x, subject_ids=None):
        return self.proj(x.flatten(1))
