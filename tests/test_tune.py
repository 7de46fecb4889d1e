"""`eegvision tune`: a seeded, resumable Optuna search scored on validation; `fit --config` reproduces its best."""

import json

import pytest
from decode_helpers import make_problem, patch_open_data
from typer.testing import CliRunner

from eegvision.cli.main import app
from eegvision.training.config import FitConfig
from eegvision.training.rundir import RunFolder, TuneFolder
from eegvision.training.tune import PruningReporter, TuneSpace, tune

runner = CliRunner()
SPACE = dict(encoders=["eegproject", "stconv"], training_data=["average", "mix", "single"], epochs=[1, 2],
             lr=[1e-3, 1e-2], weight_decay=[1e-3, 0.1], dropout=[0.0, 0.5], time_shift=[0, 2],
             amplitude_scale=[0.0, 0.1], channel_dropout=None, noise=[0.0, 0.2], ema_decay=[None, 0.9])


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    return make_problem(tmp_path_factory.mktemp("tune"), n_subjects=1)


def _base(data):
    return FitConfig(data=str(data), subjects=["sub-01"], encoder="eegproject", batch_size=16, val_fraction=0.2,
                     eval_ks=[2, 20], eval_methods=["exact"])


def _trials(result):
    return [(t["number"], t["state"], t["params"], t["value"]) for t in result.trials]


def test_tune_is_seeded_resumes_to_the_same_trials_and_fit_config_reproduces_the_best(
        problem, tmp_path, monkeypatch, one_torch_thread):
    import optuna

    store, data = problem
    patch_open_data(monkeypatch, store)
    base, space = _base(data), TuneSpace(**SPACE)
    first = tune(base, tmp_path / "a", n_trials=2, space=space, seed=5)
    assert [t["number"] for t in first.trials] == [0, 1]
    resumed = tune(base, tmp_path / "a", n_trials=3, space=space, seed=5)

    # the same search in one go, through the command line (base config and space from files)
    base.to_file(tmp_path / "base.json")
    (tmp_path / "space.json").write_text(json.dumps(SPACE))
    res = runner.invoke(app, ["tune", "--config", str(tmp_path / "base.json"), "--space", str(tmp_path / "space.json"),
                              "--out", str(tmp_path / "b"), "--n-trials", "3", "--seed", "5", "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    straight = json.loads(res.stdout)
    assert _trials(resumed) == [(t["number"], t["state"], t["params"], t["value"]) for t in straight["trials"]]
    assert len({json.dumps(t["params"], sort_keys=True) for t in resumed.trials}) == 3  # the sampler explores
    assert all(t["state"] == "COMPLETE" and 0 <= t["value"] <= 1 for t in resumed.trials)

    # the objective is the selected epoch's validation top-1; every epoch's value was reported for pruning
    study = optuna.load_study(study_name="eegvision-tune", storage=TuneFolder(tmp_path / "a").storage_url)
    for t in study.trials:
        unit = RunFolder.open(t.user_attrs["path"]).unit()
        history = unit.read_history()
        assert t.intermediate_values == {int(r["epoch"]): r["val_top1"] for r in history}
        assert t.value == unit.read_selection()["val_top1"]
    best = max(resumed.trials, key=lambda t: (t["value"], -t["number"]))
    assert (resumed.best_number, resumed.best_value) == (best["number"], best["value"])
    assert straight["best_number"] == resumed.best_number and straight["best_params"] == resumed.best_params
    cfg = FitConfig.from_file(resumed.best_config_path)
    assert cfg == FitConfig.from_dict(study.trials[resumed.best_number].user_attrs["config"])
    assert cfg.encoder == best["params"]["encoder"] and cfg.epochs == best["params"]["epochs"]

    # fit --config reproduces the best trial's metrics exactly; an option given beside it replaces the file's
    res = runner.invoke(app, ["fit", "--config", str(resumed.best_config_path), "--out", str(tmp_path / "again"),
                              "--quiet"])
    assert res.exit_code == 0, res.output
    again = RunFolder.open(tmp_path / "again")
    assert again.fit_config().differences(cfg, ignore=frozenset({"progress"})) == {}
    assert again.unit().read_metrics() == RunFolder.open(resumed.best_run).unit().read_metrics()
    assert again.unit().read_history() == RunFolder.open(resumed.best_run).unit().read_history()
    from eegvision.cli.decode_cmds import _build_config

    other = _build_config(None, {"epochs": 3, "seed": 4, "progress": False}, resumed.best_config_path)
    assert other.differences(cfg, ignore=frozenset({"progress"})) == {"epochs": (3, cfg.epochs), "seed": (4, 0)}

    # with its time budget spent, a resumed search starts no trial and reports the study as it stands
    spent = tune(base, tmp_path / "a", n_trials=10, timeout_s=1e-9, space=space, seed=5)
    assert _trials(spent) == _trials(resumed)

    # another base config, space or seed is refused clearly
    with pytest.raises(FileExistsError, match=r"holds a search with another setup \(base config lr: 0.0003 -> 0.1\)"):
        tune(base.replace(lr=0.1), tmp_path / "a", n_trials=3, space=space, seed=5)
    with pytest.raises(FileExistsError, match=r"another setup \(seed: 5 -> 6\)"):
        tune(base, tmp_path / "a", n_trials=3, space=space, seed=6)


def test_tune_space_and_config_files_refuse_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"Encoder 'stconf' is not in eegvision .*Did you mean stconv"):
        TuneSpace(encoders=["stconf"])
    with pytest.raises(ValueError, match=r"training_data must be one of average, mix, single; got 'mixed'"):
        TuneSpace(training_data=["mixed"])
    with pytest.raises(ValueError, match=r"lr is a range \[low, high\] with low <= high; got \[0.1, 0.01\]"):
        TuneSpace(lr=[0.1, 0.01])
    with pytest.raises(ValueError, match=r"TuneSpace field 'epoch' is not in TuneSpace .*Did you mean epochs"):
        TuneSpace.from_dict({"epoch": [1]})
    cfg = FitConfig(data="d", subjects=["sub-01"], encoder="atms", noise=0.1, ema_decay=0.99, patience=3, ensemble=2)
    assert FitConfig.from_file(cfg.to_file(tmp_path / "c.json")) == cfg
    (tmp_path / "c.toml").write_text('data = "d"\nsubjects = ["sub-01"]\nencoder = "atms"\nnoise = 0.1\nema_decay = 0.99\n'
                                     'patience = 3\nensemble = 2\n')
    assert FitConfig.from_file(tmp_path / "c.toml") == cfg
    (tmp_path / "bad.json").write_text('{"epoch": 3}')
    with pytest.raises(ValueError, match=r"Config file .*bad.json: FitConfig field 'epoch' .*Did you mean epochs"):
        FitConfig.from_file(tmp_path / "bad.json")
    with pytest.raises(FileNotFoundError, match="Config file .*nothing.json does not exist"):
        FitConfig.from_file(tmp_path / "nothing.json")
    # options given beside the file replace its values; encoder options are added to the file's (same encoder)
    from eegvision.cli.decode_cmds import _build_config

    c2 = FitConfig(data="d", subjects=["sub-01"], encoder="stconv", encoder_options={"hidden": 64}, mix_repetitions=True)
    c2.to_file(tmp_path / "c2.json")
    got = _build_config(None, {"encoder_options": {"dropout": 0.1}, "average_train": True, "noise": 0.3},
                        tmp_path / "c2.json")
    assert (got.encoder_options, got.average_train, got.mix_repetitions, got.noise) == (
        {"hidden": 64, "dropout": 0.1}, True, False, 0.3)
    assert _build_config(None, {"encoder": "nice"}, tmp_path / "c2.json").encoder_options == {}
    res = runner.invoke(app, ["fit", "--config", str(tmp_path / "c.json"), "--preset", "nice", "--out",
                              str(tmp_path / "r")])
    assert res.exit_code == 2 and "Give --config FILE or --preset nice, not both" in res.output
    res = runner.invoke(app, ["fit", "--subject", "sub-01", "--out", str(tmp_path / "r")])
    assert res.exit_code == 2 and "No data: pass --data DATA" in res.output


def test_pruning_reports_every_epoch_and_stops_the_trial(problem, tmp_path, monkeypatch, one_torch_thread):
    import optuna

    from eegvision.training.fitting import fit

    store, data = problem
    patch_open_data(monkeypatch, store)

    class Trial:  # stands for an Optuna trial whose pruner says stop after two reports
        reports = []

        def report(self, value, step):
            self.reports.append((step, value))

        def should_prune(self):
            return len(self.reports) == 2

    with pytest.raises(optuna.TrialPruned, match="at epoch 1 is below the median"):
        fit(_base(data).replace(epochs=4), tmp_path / "run", callbacks=[PruningReporter(Trial())])
    history = RunFolder.open(tmp_path / "run").unit().read_history()
    assert Trial.reports == [(int(r["epoch"]), r["val_top1"]) for r in history] and len(history) == 2
