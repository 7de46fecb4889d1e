"""Feature files: safetensors + metadata, checks on load, import of ATM .pt caches, CLI."""

import pickle

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from eegvision import __version__
from eegvision.features.files import import_atm_features, is_unit_norm, load_features, save_features
from eegvision.store.concepts import ConceptTable


def test_round_trip_with_metadata(tmp_path):
    g = torch.Generator().manual_seed(0)
    image = torch.nn.functional.normalize(torch.randn(6, 12, generator=g), dim=1)
    text = torch.nn.functional.normalize(torch.randn(3, 12, generator=g), dim=1)
    path = save_features(tmp_path / "f.safetensors", image, text, model="ViT-H-14", pretrained="/w/vith.bin",
                         layer="final", transform="Resize(224); CenterCrop(224)", split="test",
                         prompt_template="This picture is {concept}")
    f = load_features(path, expect_normalized=True, expect_dim=12, expect_rows=6)
    assert torch.equal(f.image, image) and torch.equal(f.text, text)
    assert f.metadata["model"] == "ViT-H-14" and f.metadata["normalized"] == "true"
    assert f.metadata["eegvision_version"] == __version__ and f.metadata["split"] == "test"
    assert f.normalized and f.dim == 12 and len(f) == 6 and f.path == path
    raw = save_features(tmp_path / "raw.safetensors", image * 5, model="ViT-H-14")  # measured: raw
    assert load_features(raw).metadata["normalized"] == "false" and load_features(raw).text is None


def test_checks_on_load_say_what_and_how(tmp_path):
    image = torch.randn(4, 8) * 3
    raw = save_features(tmp_path / "raw.safetensors", image, model="ViT-H-14")
    with pytest.raises(ValueError) as e:
        load_features(raw, expect_normalized=True)
    msg = str(e.value)
    assert "raw.safetensors" in msg and "raw (unnormalised)" in msg and "--normalize" in msg
    unit = save_features(tmp_path / "unit.safetensors", torch.nn.functional.normalize(image, dim=1))
    with pytest.raises(ValueError, match="generation prior expects raw.*--no-normalize"):
        load_features(unit, expect_normalized=False)
    with pytest.raises(ValueError, match="size 8 .* but 1024"):
        load_features(unit, expect_dim=1024)
    with pytest.raises(ValueError, match="4 image rows but the split has 200"):
        load_features(unit, expect_rows=200)
    with pytest.raises(FileNotFoundError, match="eegvision features"):
        load_features(tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="text features have dim"):
        save_features(tmp_path / "bad.safetensors", image, torch.randn(2, 5))
    with pytest.raises(ValueError, match="not unit-norm"):
        save_features(tmp_path / "bad.safetensors", image, normalized=True)
    with pytest.raises(FileExistsError):
        save_features(unit, image, overwrite=False)
    assert not (tmp_path / "bad.safetensors").exists()


def test_concept_table_travels_and_is_checked(tmp_path):
    image = torch.nn.functional.normalize(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)), dim=1)
    table = ConceptTable.from_names(["aardvark", "abacus", "accordion"], ["/i/0.jpg", "/i/1.jpg", "/i/2.jpg"], "test")
    path = save_features(tmp_path / "f.safetensors", image, image.clone(), concepts=table, split="test")
    f = load_features(path, expect_concepts=table)
    assert f.concepts == table and "concepts" not in f.metadata
    # the data calls concept 1 something else: the message names it and says what to do
    other = ConceptTable.from_names(["aardvark", "acorn", "accordion"], split="test")
    with pytest.raises(ValueError, match=r"concept 1 is 'abacus' in feature file .*f.safetensors and 'acorn' in the "
                                         r"data's test split\. Use features extracted from the image folder of that "
                                         r"split \(`eegvision features test_images"):
        load_features(path, expect_concepts=other)
    with pytest.raises(ValueError, match="1 concept\\(s\\) only in the data's test split: 3 'bassoon'"):
        load_features(path, expect_concepts=ConceptTable.from_names([*table.name, "bassoon"], split="test"))
    # a file without a table cannot be checked, and is read as before
    plain = save_features(tmp_path / "p.safetensors", image)
    assert load_features(plain, expect_concepts=other).concepts is None
    with pytest.raises(ValueError, match="3 rows .* but the concept table has 2 concepts"):
        save_features(tmp_path / "bad.safetensors", image, image.clone(), concepts=table.select([0, 1]))


def test_import_atm_dict_and_tensor(data_dir, tmp_path):
    src = data_dir / "things_eeg2_clip" / "ViT-H-14_features_test.pt"
    ref = torch.load(src, weights_only=True)
    out = import_atm_features(src, tmp_path / "test.safetensors", normalize=True)
    f = load_features(out, expect_normalized=True, expect_dim=1024, expect_rows=200)
    assert torch.allclose(f.image, torch.nn.functional.normalize(ref["img_features"], dim=1))
    assert torch.allclose(f.text, ref["text_features"], atol=1e-6)
    assert f.metadata["split"] == "test" and f.metadata["source"] == src.name
    assert "RandomResizedCrop" in f.metadata["transform"]

    raw_src = data_dir / "things_eeg2_clip" / "ViT-H-14_features_test_unnormalized_img.pt"
    raw = load_features(import_atm_features(raw_src, tmp_path / "raw.safetensors", normalize=False),
                        expect_normalized=False)
    assert torch.equal(raw.image, torch.load(raw_src, weights_only=True)) and raw.text is None
    assert not is_unit_norm(raw.image)

    # any embedding size (e.g. ViT-L-14, 768), train split guessed from the name
    torch.save({"img_features": torch.randn(10, 768) * 4, "text_features": torch.randn(2, 768)},
               tmp_path / "ViT-L-14_features_train.pt")
    big = load_features(import_atm_features(tmp_path / "ViT-L-14_features_train.pt", tmp_path / "l.safetensors",
                                            normalize=True, model="ViT-L-14"))
    assert big.dim == 768 and big.normalized and is_unit_norm(big.text) and big.metadata["split"] == "training"

    with pytest.warns(UserWarning, match="already holds unit-norm"):
        import_atm_features(src, tmp_path / "again.safetensors", normalize=False)
    with pytest.raises(ValueError, match="explicitly"):
        import_atm_features(src, tmp_path / "x.safetensors", normalize=None)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_import_refuses_pickled_code_and_odd_content(tmp_path):
    with open(tmp_path / "evil.pt", "wb") as f:
        pickle.dump({"img_features": _Evil()}, f, protocol=2)
    with pytest.raises(ValueError, match=r"evil.pt holds Python objects besides tensors") as err:
        import_atm_features(tmp_path / "evil.pt", tmp_path / "o.safetensors", normalize=True)
    assert "weights_only=False" not in str(err.value)  # never the unsafe advice
    torch.save({"feats": torch.zeros(2, 3)}, tmp_path / "odd.pt")
    with pytest.raises(ValueError, match="img_features"):
        import_atm_features(tmp_path / "odd.pt", tmp_path / "o.safetensors", normalize=True)
    with pytest.raises(FileNotFoundError):
        import_atm_features(tmp_path / "none.pt", tmp_path / "o.safetensors", normalize=True)


def test_load_features_reads_pt_and_npy_in_place(data_dir, tmp_path):
    src = data_dir / "things_eeg2_clip" / "ViT-H-14_features_test.pt"
    f = load_features(src, expect_normalized=True)
    assert f.image.shape == (200, 1024) and f.text.shape == (200, 1024)
    nice = load_features(data_dir / "things_eeg2_clip" / "nice_clip_vitl14_test_images.npy")
    assert nice.image.shape == (200, 768)  # (200, 1, 768) squeezed
    np.save(tmp_path / "x.npy", np.ones((3, 4), dtype=np.float32))
    assert load_features(tmp_path / "x.npy").metadata["normalized"] == "false"


def test_cli_import_features(data_dir, tmp_path):
    from eegvision.cli.main import app

    runner = CliRunner()
    src = str(data_dir / "things_eeg2_clip" / "ViT-H-14_features_test.pt")
    out = tmp_path / "o.safetensors"
    res = runner.invoke(app, ["import-features", src, str(out)])
    assert res.exit_code != 0 and not out.exists()  # the normalisation choice is required
    res = runner.invoke(app, ["import-features", src, str(out), "--normalize"])
    assert res.exit_code == 0, res.output
    assert load_features(out, expect_normalized=True).text is not None
    res = runner.invoke(app, ["import-features", src, str(out), "--normalize"])
    assert res.exit_code == 2 and "--force" in res.output
    # the concept table of the split, from a table file (a store folder works the same way)
    from eegvision.readers.things_eeg2 import things_eeg2_concepts

    ConceptTable.from_names(things_eeg2_concepts("test")).write(tmp_path / "test_concepts.tsv")
    res = runner.invoke(app, ["import-features", src, str(out), "--normalize", "--force", "--concepts",
                              str(tmp_path / "test_concepts.tsv")])
    assert res.exit_code == 0, res.output
    table = load_features(out).concepts
    assert len(table) == 200 and table.index[:2] == (0, 1) and table.name[:2] == ("aircraft_carrier", "antelope")
    assert table.split == "test"  # guessed from ViT-H-14_features_test.pt
    res = runner.invoke(app, ["import-features", str(tmp_path / "nope.pt"), str(tmp_path / "n.safetensors"),
                              "--no-normalize"])
    assert res.exit_code == 2 and "not found" in res.output
