"""``odenets analyze``: modified / stability / convergence on the command line, and its errors."""
import argparse
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from odenets import zoo
from odenets.analysis.schemes import analysable
from odenets.app.commands import analyze
from odenets.app.errors import CheckpointError, StorageError, UsageError
from odenets.app.run import checkpoint
from odenets.app.settings.config import Config

ROOT = Path(__file__).resolve().parents[1]


def run(argv):
    p = argparse.ArgumentParser(prog="odenets")
    analyze.register(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(argv)
    return args.func(args)


def save(path, model_name, model):
    """A checkpoint as `odenets train` writes it (digits: 1 input channel, 10 classes)."""
    checkpoint.save(path, {"config": asdict(Config(model=model_name, data="digits")), "model": model.state_dict(),
                           "optimizer": {}, "scaler": {}, "epoch": 1, "batch": 0, "step": 10, "partial": {},
                           "history": [], "rng": [], "world_size": 1})
    return str(path)


@pytest.fixture
def lm_checkpoint(tmp_path):
    model = zoo.create("lm_resnet14", num_classes=10, in_chans=1)
    ks = []
    with torch.no_grad():
        for i, p in enumerate(name for name, _ in model.named_parameters() if name.endswith(".k")):
            value = -0.1 * (i + 1)
            model.get_parameter(p).fill_(value)
            ks.append(value)
    assert ks, "lm_resnet14 should hold learned k_n"
    return save(tmp_path / "lm.pt", "lm_resnet14", model), ks


def test_modified_prints_the_hand_set_coefficients(lm_checkpoint, tmp_path, capsys):
    path, ks = lm_checkpoint
    assert run(["analyze", "modified", path, "--json"]) == 0
    (label, rows), = json.loads(capsys.readouterr().out).items()
    assert label.startswith("lm_resnet14")
    learned = [r for r in rows if r["learned"]]
    assert not rows[0]["learned"] and rows[0]["coefficients"] == {}  # the first step: forward Euler
    assert (rows[0]["du"], rows[0]["ddu"]) == pytest.approx((1.0, rows[0]["dt"] / 2))
    assert [r["coefficients"]["k"] for r in learned] == pytest.approx(ks)
    assert [r["du"] for r in learned] == pytest.approx([1 + k for k in ks])
    assert [r["ddu"] for r in learned] == pytest.approx([(1 - k) * r["dt"] / 2 for k, r in zip(ks, learned)])
    out = tmp_path / "k.png"
    assert run(["analyze", "modified", path, path, "--plot-k", str(out)]) == 0
    assert "momentum" in capsys.readouterr().out
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_stability_with_a_checkpoint(lm_checkpoint, tmp_path, capsys):
    path, ks = lm_checkpoint
    out = tmp_path / "regions.png"
    assert run(["analyze", "stability", "--schemes", "euler,rk4,ab2,lm", "--k=-0.5,0.5", "--out", str(out),
                "--checkpoint", path, "--resolution", "101", "--json"]) == 0
    table = {t["scheme"]: t for t in json.loads(capsys.readouterr().out)}
    assert table["rk4"]["real_interval"][0] == pytest.approx(-2.7853, abs=1e-3)
    assert table["ab2"]["real_interval"][0] == pytest.approx(-1.0, abs=1e-6)
    assert table["lm(k=-0.5)"]["real_interval"][0] == pytest.approx(-3.0, abs=1e-6)
    assert table["lm(k=0.5)"]["real_interval"][0] == pytest.approx(-1.0, abs=1e-6)
    learned = [t for name, t in table.items() if "depth" in name]
    assert [t["real_interval"][0] for t in learned] == pytest.approx([-2 * (1 - k) for k in ks], abs=1e-6)
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_convergence(tmp_path, capsys):
    out = tmp_path / "conv.png"
    assert run(["analyze", "convergence", "--schemes", "euler,rk4", "--steps", "16,32,64", "--out", str(out),
                "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["slopes"]["euler"] == pytest.approx(1, abs=0.2)
    assert result["slopes"]["rk4"] == pytest.approx(4, abs=0.2)
    assert out.is_file()


def test_bad_input(tmp_path, lm_checkpoint):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        run(["analyze", "modified", str(tmp_path / "missing.pt")])
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(Path(lm_checkpoint[0]).read_bytes()[:200])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        run(["analyze", "modified", str(corrupt)])
    resnet = save(tmp_path / "resnet.pt", "resnet8", zoo.create("resnet8", num_classes=10, in_chans=1))
    with pytest.raises(UsageError, match=r"no LM steps.*euler.*train an lm_\* model, or train with `odenets train "
                                         r"--solver lm`"):
        run(["analyze", "modified", resnet])
    builtin = {"ab2", "ab3", "ab4", "euler", "heun", "lm", "midpoint", "momentum", "polynet", "rk3", "rk4"}
    assert builtin <= set(analysable())  # from what they declare (schemes registered since are listed too)
    listed = f"the schemes analysed by name are: {', '.join(analysable())}$"
    for action, schemes in [("stability", "euler,rk5"), ("stability", "revnet"), ("stability", "euler_maruyama"),
                            ("convergence", "euler,dopri5"), ("convergence", "fractal")]:
        bad = schemes.split(",")[-1]
        with pytest.raises(UsageError, match=rf"cannot analyse scheme\(s\) {bad}; {listed}"):
            run(["analyze", action, "--schemes", schemes])
    with pytest.raises(UsageError, match="png"):
        run(["analyze", "stability", "--out", str(tmp_path / "x.svg")])
    path = lm_checkpoint[0]
    for flags, message in [(["--top", "0"], "--top must be at least 1"), (["--top", "many"], "--top takes a positive"),
                           (["--images", "0"], "--images must be at least 1"), (["--out", "x.jpg"], "png")]:
        with pytest.raises(UsageError, match=message):
            run(["analyze", "spectra", path, *flags])


@pytest.mark.slow
def test_spectra_of_checkpoints_trained_on_the_digits(tmp_path, capsys):
    from odenets.app.commands import cli
    from odenets.app.run.models import from_checkpoint

    runs = []
    for solver in ("euler", "lm"):
        runs.append(str(tmp_path / solver))
        assert cli.main(["train", "--model", "resnet14", "--solver", solver, "--epochs", "1", "--batch-size", "128",
                         "--out", runs[-1], "--quiet"]) == 0
    capsys.readouterr()
    figure = tmp_path / "spectra.png"
    assert run(["analyze", "spectra", *runs, "--images", "3", "--top", "4", "--out", str(figure), "--json"]) == 0
    (euler_label, euler), (lm_label, lm) = json.loads(capsys.readouterr().out).items()
    assert "resnet14" in euler_label and "lm" in lm_label
    assert figure.read_bytes()[:4] == b"\x89PNG"
    # two blocks a stage; stages 1 and 2 open with a downsampling block, which is skipped
    for rows in (euler, lm):
        assert [(r["stage"], r["step"]) for r in rows] == [("stages.0", 0), ("stages.0", 1), ("stages.1", 1),
                                                            ("stages.2", 1)]
        assert [r["method"] for r in rows] == ["arnoldi", "arnoldi", "exact", "exact"]  # 1024, 1024, 512, 256 numbers
        assert all(r["count"] == 4 and r["radius"] > 0 and 0 <= r["inside_fraction"] <= 1 for r in rows)
        assert all(r["max_real"] <= r["radius"] + 1e-9 for r in rows)
    assert {r["region"] for r in euler} == {"euler"}
    model, _, _ = from_checkpoint(runs[1])  # each LM step is judged at the k the checkpoint learned
    ks = [c["k"].item() for stage in model.stages for c in stage.coefs if "k" in c]
    assert [r["region"] for r in lm] == ["euler"] + [f"lm(k={k:g})" for k in ks]

    assert run(["analyze", "spectra", runs[1], "--images", "2", "--top", "all"]) == 0
    table = capsys.readouterr().out
    assert "inside" in table and "means over 2 image(s)" in table
    counts = [line.split()[5] for line in table.splitlines() if line.startswith(("1 ", "2 ", "3 "))]
    assert counts == ["8", "512", "256"]  # Arnoldi's default 8, then every eigenvalue where J is formed


@pytest.mark.slow
def test_python_dash_m_odenets_analyze(tmp_path):
    out = tmp_path / "regions.png"
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "odenets", "analyze", "stability", "--schemes", "euler,rk4",
                           "--out", str(out), "--resolution", "81"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "[-2.7853, 0]" in proc.stdout
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_cli_reports_errors_without_a_traceback(capsys):
    from odenets.app.commands import cli

    for scheme in ("nope", "euler_maruyama"):
        assert cli.main(["analyze", "stability", "--schemes", scheme]) == 2
        err = capsys.readouterr().err
        assert f"odenets analyze: error: cannot analyse scheme(s) {scheme}" in err and "Traceback" not in err


def test_a_figure_that_cannot_be_written_is_refused_before_the_work(tmp_path, lm_checkpoint, monkeypatch, capsys):
    import odenets.analysis as analysis

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    figure = blocker / "fig.png"
    for name in ("step_spectra", "convergence", "stability_region", "modified_equation"):
        monkeypatch.setattr(analysis, name, lambda *a, **k: pytest.fail("the work began"), raising=False)
    path = lm_checkpoint[0]
    for argv, flag in [(["spectra", path, "--out"], "--out"), (["stability", "--out"], "--out"),
                       (["convergence", "--out"], "--out"), (["modified", path, "--plot-k"], "--plot-k"),
                       (["modified", path, "--plot-k-epochs"], "--plot-k-epochs")]:
        with pytest.raises(StorageError, match=f"{flag} {figure}: cannot write there: {blocker} is a file, not a folder"):
            run(["analyze", *argv, str(figure)])
    with pytest.raises(StorageError, match="cannot write there: it is a folder"):
        (tmp_path / "taken.png").mkdir()
        run(["analyze", "convergence", "--out", str(tmp_path / "taken.png")])
    assert capsys.readouterr().out == ""  # nothing computed, nothing printed


def test_a_disk_that_fills_during_the_work_is_named(tmp_path, monkeypatch):
    import errno

    import odenets.analysis as analysis

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(analysis, "plot_convergence", full)
    figure = tmp_path / "fig.png"
    with pytest.raises(StorageError, match=f"--out {figure}: cannot write there: the disk is full"):
        run(["analyze", "convergence", "--schemes", "euler", "--steps", "4,8", "--out", str(figure)])
