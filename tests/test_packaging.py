"""The installed names: odenets alone at the top, its solvers and zoo inside it."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROBE = ("import importlib.util as u, odenets.solvers, odenets.zoo; "
         "print(u.find_spec('solvers') is None, u.find_spec('zoo') is None, "
         "odenets.zoo.create('resnet20').__class__.__name__, odenets.solvers.get('lm').__class__.__name__)")


def test_the_installed_environment_has_no_top_level_solvers_or_zoo(tmp_path):
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "ResNet", "LM"]


@pytest.mark.slow
def test_pip_install_puts_solvers_and_zoo_inside_odenets(tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(target), str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    top = {p.name for p in target.iterdir() if not p.name.endswith((".dist-info", ".egg-info")) and p.name != "bin"}
    assert top == {"odenets"}
    assert (target / "odenets" / "solvers" / "lm.py").is_file() and (target / "odenets" / "zoo" / "resnet.py").is_file()
    env = {"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"}
    others = [p for p in sys.path[1:] if p and Path(p).resolve() != ROOT]  # torch and the rest, not the checkout
    out = subprocess.run([sys.executable, "-S", "-c", "import sys; sys.path.extend(%r); " % others + PROBE],
                         cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "True", "ResNet", "LM"]
