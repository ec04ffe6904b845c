"""The modified equation (1 + k) u' + (1 - k)(dt/2) u'' = f(u) of LM networks whose k_n are set by hand."""
import math

import pytest
import torch
from odenets.solvers import Record
from torch import nn

from odenets import Carry, ODENet
from odenets.analysis import READINGS, format_table, modified_equation, plot_learned_k


class Model(nn.Module):
    """A stem, an LM stage (scalar k, dt = 1), a ResNet stage, an LM stage with one k per channel (dt = 0.5)."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 3, 3, padding=1)
        self.first = ODENet(lambda i: nn.Conv2d(3, 3, 3, padding=1), "lm", steps=3)
        self.plain = ODENet(lambda i: nn.Conv2d(3, 3, 3, padding=1), "euler", steps=2)
        self.second = ODENet(lambda i: nn.Conv2d(3, 3, 3, padding=1), "lm", steps=2, dt=0.5, carry_in=True,
                             channels=3)


def hand_set():
    model = Model()
    with torch.no_grad():
        model.first.coefs[1]["k"].fill_(-0.5)
        model.first.coefs[2]["k"].fill_(0.25)
        model.second.coefs[0]["k"].copy_(torch.tensor([-0.95, -0.2, 0.6]))
        model.second.coefs[1]["k"].copy_(torch.tensor([0.1, -0.3, 1.5]))
    return model


def test_coefficients_computed_by_hand():
    rows = modified_equation(hand_set())
    assert [(r.depth, r.net, r.stage, r.step) for r in rows] == [
        (0, "first", 0, 0), (1, "first", 0, 1), (2, "first", 0, 2), (3, "second", 1, 0), (4, "second", 1, 1)]
    first, a, b, c, d = rows
    # the network's first step has no u_{n-1}: forward Euler, k = 0, u' + (dt/2) u''
    assert not first.learned and len(Model().first.coefs[0]) == 0 and first.coefficients == {}
    assert float(first.equation.du) == 1.0 and float(first.equation.ddu) == 0.5 and float(first.equation.f) == 1.0
    # k = -0.5, dt = 1: 1 + k = 0.5, (1 - k) dt / 2 = 0.75;  k = 0.25: 1.25 and 0.375
    assert a.learned and float(a.equation.du) == pytest.approx(0.5) and float(a.equation.ddu) == pytest.approx(0.75)
    assert float(b.equation.du) == pytest.approx(1.25) and float(b.equation.ddu) == pytest.approx(0.375)
    assert float(b.equation.f) == pytest.approx(1.0) and float(b.equation.df) == pytest.approx(0.0)
    # per channel, dt = 0.5: (1 - k) * 0.25
    assert c.per_channel and c.dt == 0.5
    assert torch.allclose(c.equation.du, torch.tensor([0.05, 0.8, 1.6], dtype=torch.float64))
    assert torch.allclose(c.equation.ddu, torch.tensor([1.95 / 4, 1.2 / 4, 0.4 / 4], dtype=torch.float64))
    assert torch.allclose(d.equation.ddu, torch.tensor([0.9 / 4, 1.3 / 4, -0.5 / 4], dtype=torch.float64))
    assert d.as_dict()["coefficients"]["k"] == pytest.approx([0.1, -0.3, 1.5])


def test_readings():
    rows = modified_equation(hand_set())
    assert [r.regime for r in rows] == ["euler", "momentum", "damped", "momentum", "unstable"]
    assert "1 of 3 channels" in rows[4].reading
    assert "larger effective step" in rows[1].reading
    net = ODENet(nn.Identity(), "lm", steps=2, k_init=-0.95)
    assert modified_equation(net)[1].regime == "inertial"
    assert "second order in time" in READINGS["inertial"]
    table = format_table(rows)
    assert "(none)" in table.splitlines()[2] and "+0.5000" in table
    for key in ("euler", "momentum", "damped", "unstable"):
        assert READINGS[key] in table


def test_the_modified_equation_is_what_the_lm_step_solves():
    # u' = lam u with exact starting values: the LM solution is O(dt^2) from the smooth solution e^{m t}
    # of (1 + k) u' + (1 - k)(dt/2) u'' = lam u, but only O(dt) from that of (1 + k) u' = lam u
    lam, k, T = -1.0, -0.5, 1.0

    class Scale(nn.Module):
        def forward(self, u):
            return lam * u

    err_modified, err_first_order, dts = [], [], []
    for n in (64, 128, 256):
        dt = T / n
        a, b = (1 - k) * dt / 2, 1 + k
        m = 2 * lam / (b + math.sqrt(b * b + 4 * a * lam))  # the root of a m^2 + b m = lam near lam / b
        net = ODENet(Scale(), "lm", steps=n - 1, dt=dt, k_init=k, carry_in=True).double()
        u0 = torch.ones(1, 1, dtype=torch.float64)
        with torch.no_grad():
            u = net.integrate(Carry(u0 * math.exp(m * dt), (Record(u0),))).u
        dts.append(dt)
        err_modified.append(abs(float(u) - math.exp(m * T)))
        err_first_order.append(abs(float(u) - math.exp(lam * T / b)))
    slope = lambda e: math.log(e[-1] / e[0]) / math.log(dts[-1] / dts[0])  # noqa: E731
    assert slope(err_modified) == pytest.approx(2.0, abs=0.1)
    assert slope(err_first_order) == pytest.approx(1.0, abs=0.1)


def test_plot_learned_k(tmp_path):
    one, two = modified_equation(hand_set()), modified_equation(Model())
    fig = plot_learned_k({"hand": one, "init": two}, tmp_path / "k.png")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["hand", "init"]
    assert ax.lines[0].get_ydata().tolist() == pytest.approx([-0.5, 0.25, float(one[3].coefficients["k"].mean()),
                                                              float(one[4].coefficients["k"].mean())])
    assert len(ax.collections) >= 1  # the min-max band of the per-channel stage
    assert (tmp_path / "k.png").read_bytes()[:4] == b"\x89PNG"


def test_models_without_lm_are_refused():
    with pytest.raises(ValueError, match="no ODENet with solver 'lm'.*euler"):
        modified_equation(ODENet(nn.Identity(), "euler", steps=3))
    with pytest.raises(ValueError, match="contains no ODENet"):
        modified_equation(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="nn.Module"):
        modified_equation("lm_resnet20")


def test_bounded_k_is_read_as_k_not_as_its_raw_coefficient():
    net = ODENet(lambda i: nn.Linear(2, 2), "lm", steps=3, k_bounds=(-0.5, 0.5))
    with torch.no_grad():
        net.coefs[1]["k_raw"].fill_(math.atanh(0.6))  # k = 0.5 * 0.6
    rows = modified_equation(net)
    assert [r.learned for r in rows] == [False, True, True]
    assert rows[1].coefficients["k"].item() == pytest.approx(0.3) and rows[1].regime == "damped"
