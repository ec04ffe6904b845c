"""One SolverSpec end to end (issue #19): the solver's text is parsed once where it enters
(a flag, a settings file, an API call), the object is what the run, the zoo and ODENet
carry, and the model's options and the scheme's stay apart all the way down."""
import json

import pytest
from torch import nn

from odenets import ODENet, zoo
from odenets.app.commands import ablate, cli
from odenets.app.settings.config import Config, known
from odenets.solvers import SolverSpec


@pytest.fixture
def parsed(monkeypatch):
    """The texts SolverSpec.parse reads, in order (a spec handed on as it is reads none)."""
    texts = []
    parse = SolverSpec.parse.__func__

    def counting(cls, solver, **kwargs):
        if isinstance(solver, str):
            texts.append(solver)
        return parse(cls, solver, **kwargs)

    monkeypatch.setattr(SolverSpec, "parse", classmethod(counting))
    return texts


@pytest.fixture
def handed(monkeypatch):
    """The solver each zoo.create and each ODENet of the run is handed."""
    seen = {"create": [], "odenet": []}
    create, init = zoo.create, ODENet.__init__

    def creating(name, *args, solver=None, **kwargs):
        seen["create"].append(solver)
        return create(name, *args, solver=solver, **kwargs)

    def initialising(self, f, solver="euler", *args, **kwargs):
        seen["odenet"].append(solver)
        init(self, f, solver, *args, **kwargs)

    monkeypatch.setattr(zoo, "create", creating)
    monkeypatch.setattr(ODENet, "__init__", initialising)
    return seen


TINY = ["--model", "resnet8", "--epochs", "1", "--batch-size", "50", "--train-subset", "100", "--quiet"]


def test_odenets_train_parses_the_solver_once_and_carries_the_object(tmp_path, parsed, handed):
    out = tmp_path / "run"
    assert cli.main(["train", *TINY, "--solver", "lm", "--noise", "stochastic_depth", "--survival", "0.8",
                     "--opt", "k_init=0.0", "--opt", "preact=true", "--out", str(out)]) == 0
    assert parsed == ["lm"]
    expect = SolverSpec.parse("lm+sd", survival=0.8, k_init=0.0)
    assert handed["create"] == [expect]
    assert len(handed["odenet"]) == 3 and all(isinstance(s, SolverSpec) for s in handed["odenet"])
    assert [s.replace(survival=0.8) for s in handed["odenet"]] == [expect] * 3  # each stage its share of p_n
    result = json.loads((out / "result.json").read_text())
    assert (result["label"], result["config"]["solver"]) == ("lm+sd", "lm+sd")
    assert result["config"]["options"] == {"preact": True, "k_init": 0.0, "survival": 0.8}  # as --opt gives them


def test_a_settings_file_parses_the_solver_once(tmp_path, parsed):
    path = tmp_path / "run.toml"
    path.write_text(f'solver = "euler+sd"\nsurvival = 0.9\nout = "{tmp_path / "run"}"\n')
    assert cli.main(["train", "--config", str(path), *TINY]) == 0
    assert parsed == ["euler+sd"]
    assert json.loads((tmp_path / "run" / "result.json").read_text())["label"] == "euler+sd"


def test_the_models_own_solver_takes_the_flags_noise_and_is_parsed_once(tmp_path, parsed):
    out = tmp_path / "run"
    assert cli.main(["train", *TINY, "--model", "lm_resnet8", "--noise", "batch_drop", "--out", str(out)]) == 0
    assert parsed == ["lm"]  # lm_resnet8's own, read once, with the noise
    assert json.loads((out / "result.json").read_text())["label"] == "lm+bd"


def test_zoo_create_parses_its_text_once_and_hands_builders_the_spec_and_the_models_options(monkeypatch, parsed):
    got = {}

    def tiny(num_classes: int = 10, in_chans: int = 3, solver: str = "euler", width: int = 4, **options) -> nn.Module:
        got.update(solver=solver, width=width, options=options)  # a builder passing the rest on to zoo.build
        return nn.Linear(in_chans, num_classes)

    monkeypatch.setitem(zoo.registry._MODELS, "tiny", tiny)
    zoo.create("tiny", solver="lm", width=8, noise="stochastic_depth", k_init=0.0, dt=0.5)
    assert parsed == ["lm"]
    assert got == {"solver": SolverSpec.parse("lm+sd", k_init=0.0), "width": 8, "options": {"dt": 0.5}}
    parsed.clear()
    zoo.create("tiny", width=8)
    assert parsed == ["euler"] and got["solver"] == SolverSpec.parse("euler")  # the builder's own, read once
    parsed.clear()
    model = zoo.create("resnet14", solver="lm", noise="stochastic_depth", survival=0.5, k_init=0.0, channels=True)
    assert parsed == ["lm"]  # not again per stage
    assert [tuple(s.coefs[1]["k"].shape) for s in model.stages] == [(16,), (32,), (64,)]
    spec = SolverSpec.parse("rk4")
    parsed.clear()
    zoo.create("resnet8", solver=spec, preact=True)
    zoo.create("lm_resnet56_sd", noise="stochastic_depth")  # its own spec, with Huang et al.'s noise
    assert parsed == []


def test_the_models_options_and_the_schemes_are_told_apart_by_the_models_signature():
    assert zoo.split_options("resnet20", {"preact": True, "dt": 0.5, "k_init": 0.0, "noise": "batch_drop"}) == \
        ({"preact": True, "dt": 0.5}, {"k_init": 0.0, "noise": "batch_drop"})
    assert zoo.split_options("resnet50", {"width_per_group": 4, "gamma": 0.9}) == \
        ({"width_per_group": 4}, {"gamma": 0.9})
    cfg = Config(model="resnet8", solver="lm", options={"preact": True, "k_bounds": (-0.5, 0.5)})
    assert cfg.options == {"preact": True} and cfg.solver == SolverSpec.parse("lm", k_bounds=(-0.5, 0.5))


@pytest.mark.parametrize("config, texts", [
    (dict(model="resnet8", solver="lm+sd", options={"survival": [0.9, 0.8, 0.7], "k_init": 0.0, "dt": 0.5}),
     ["lm+sd", "lm+sd"]),
    (dict(model="lm_resnet56_sd", options={"noise": "stochastic_depth"}), ["lm+sd"]),  # its own spec, then the record
    (dict(model="resnet8", options={"preact": True}), []),
])
def test_a_record_reads_back_into_the_same_settings(config, texts, parsed):
    cfg = Config(**config)
    record = json.loads(json.dumps(cfg.record()))
    assert isinstance(record["solver"], (str, type(None))) and all(isinstance(k, str) for k in record["options"])
    again = Config(**known(record))
    assert again == cfg and again.record() == record
    assert parsed == texts  # once as the Config is made, once as the record is read


def test_ablate_applies_the_noise_and_options_to_each_rows_solver(parsed):
    args = cli.parser().parse_args(["ablate", "--models", "resnet8", "--solvers", "euler,lm", "--seeds", "2",
                                    "--noise", "stochastic_depth", "--survival", "0.8", "--opt", "preact=true"])
    study = ablate.plan(args)
    assert {name: [cfg.solver for cfg in cfgs] for name, cfgs in study.plan.items()} == \
        {"euler": [SolverSpec.parse("euler+sd", survival=0.8)] * 2, "lm": [SolverSpec.parse("lm+sd", survival=0.8)] * 2}
    assert all(cfg.options == {"preact": True} for cfg in study.runs)
    assert parsed.count("lm") == 1  # once for the row, whose runs carry the object
