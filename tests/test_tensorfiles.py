"""Damaged tensor files: one error naming the file, from every reader and from the command line."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from eegvision.tensorfiles import load_safetensors, load_torch


def _damaged(tmp_path, name: str) -> str:
    path = tmp_path / name
    if name.endswith(".safetensors"):
        save_file({"image": torch.zeros(4, 8)}, str(path))
    else:
        torch.save({"img_features": torch.zeros(4, 8)}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # an interrupted copy
    return str(path)


def test_damaged_safetensors_and_pt_give_one_line_naming_the_file(tmp_path):
    bad = _damaged(tmp_path, "test.safetensors")
    with pytest.raises(ValueError) as err:
        load_safetensors(bad, "Feature file")
    msg = str(err.value)
    assert msg.startswith(f"Feature file {bad} could not be read (Error while deserializing header")
    assert msg.endswith("copy or write it again.") and "\n" not in msg
    bad_pt = _damaged(tmp_path, "emb.pt")
    with pytest.raises(ValueError) as err:
        load_torch(bad_pt, "Embedding file")
    assert str(err.value).startswith(f"Embedding file {bad_pt} could not be read (")
    assert "weights_only" not in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("reader", ["features", "embeddings", "encoder", "prior"])
def test_every_reader_names_a_damaged_file(tmp_path, reader):
    from eegvision.evaluation.embeddings import load_embeddings
    from eegvision.features.files import load_features
    from eegvision.models.encoders.checkpoint import load_checkpoint_weights
    from eegvision.models.prior import DiffusionPrior

    if reader in ("features", "embeddings"):
        bad = _damaged(tmp_path, "test.safetensors")
        call = {"features": load_features, "embeddings": load_embeddings}[reader]
        with pytest.raises(ValueError, match=f"^{'Feature' if reader == 'features' else 'Embedding'} file "
                                             f"{bad} could not be read"):
            call(bad)
        return
    folder = tmp_path / "model"
    folder.mkdir()
    bad = _damaged(folder, "model.safetensors")
    with pytest.raises(ValueError, match=f"{bad} could not be read"):
        if reader == "encoder":
            load_checkpoint_weights(torch.nn.Linear(8, 4), folder)
        else:
            (folder / "config.json").write_text("{}")
            DiffusionPrior.from_pretrained(folder)
