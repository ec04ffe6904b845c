"""Options are typed: ``--opt preact=false`` is False, a value of the wrong type is an
error naming the option, the value and what it takes, on the command line and in
``zoo.create`` alike; and which keywords a model takes is read from its signature."""
import pytest
from torch import nn

from odenets import zoo
from odenets.app.commands import cli
from odenets.app.run.models import build
from odenets.app.settings.config import Config, parse_options


@pytest.mark.parametrize("text, value", [("false", False), ("FALSE", False), ("True", True), ("none", None),
                                         ("3", 3), ("-0.5", -0.5), ("1e-3", 1e-3), ("[0.9, 0.8]", [0.9, 0.8]),
                                         ("stochastic_depth", "stochastic_depth"), ("0.1x", "0.1x")])
def test_option_values_parse_by_their_text(text, value):
    assert parse_options([f"key={text}"]) == {"key": value}


def test_preact_false_from_the_command_line_builds_the_post_activation_network():
    post = build(Config(model="resnet20", options=parse_options(["preact=false"])), 10, 3)
    pre = build(Config(model="resnet20", options=parse_options(["preact=TRUE"])), 10, 3)
    assert not hasattr(post.head, "bn") and isinstance(pre.head.bn, nn.BatchNorm2d)


@pytest.mark.parametrize("option, value, takes", [("preact", "no", "true or false, or None"),
                                                  ("preact", 1, "true or false, or None"),
                                                  ("checkpoint", "no", "true or false"),
                                                  ("memory_efficient", 0, "true or false"),
                                                  ("dt", "0.1x", "a number"),
                                                  ("survival", "high", "a number, or a list of numbers, or None")])
def test_a_value_of_the_wrong_type_is_a_type_error_naming_the_option(option, value, takes):
    with pytest.raises(TypeError, match=rf"model 'resnet20': option {option} takes {takes}, got {value!r}"):
        zoo.create("resnet20", **{option: value})


@pytest.mark.parametrize("opt, expect", [("preact=no", "option preact takes true or false, or None, got 'no'"),
                                         ("checkpoint=maybe", "option checkpoint takes true or false, got 'maybe'"),
                                         ("dt=1,5", "option dt takes a number, got (1, 5)")])
def test_a_value_of_the_wrong_type_on_the_command_line(tmp_path, capsys, opt, expect):
    code = cli.main(["train", "--model", "resnet8", "--opt", opt, "--epochs", "1", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2 and expect in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_type_error_inside_a_builder_is_not_mistaken_for_the_callers_keyword(monkeypatch):
    def helper():
        return nn.Identity()

    def tiny(num_classes: int = 10, in_chans: int = 3, solver: str = "euler", width: int = 4) -> nn.Module:
        return helper(width=width)  # a bug in the builder: the keyword is the caller's, the fault is not

    monkeypatch.setitem(zoo.registry._MODELS, "tiny", tiny)
    with pytest.raises(TypeError, match="unexpected keyword argument 'width'"):
        zoo.create("tiny", width=8)
    with pytest.raises(TypeError, match="option width takes an integer, got 'wide'"):
        zoo.create("tiny", width="wide")


def test_a_bug_surfaces_as_itself_not_as_a_usage_error(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise TypeError("a bug in the zoo")

    monkeypatch.setattr(zoo, "create", broken)
    with pytest.raises(TypeError, match="a bug in the zoo"):
        cli.main(["train", "--model", "resnet8", "--epochs", "1", "--out", str(tmp_path / "run")])


def test_the_settings_are_checked_once_per_training_run(tmp_path, monkeypatch):
    calls = []
    check = Config.check
    monkeypatch.setattr(Config, "check", lambda self: calls.append(1) or check(self))
    assert cli.main(["train", "--model", "resnet8", "--epochs", "1", "--batch-size", "256", "--out",
                     str(tmp_path), "--quiet"]) == 0
    assert len(calls) == 1
