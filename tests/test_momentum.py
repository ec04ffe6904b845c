"""The momentum scheme of Momentum ResNets (Sander, Ablin, Blondel & Peyré, ICML 2021):
v_{n+1} = gamma v_n + (1 - gamma) f_n(x_n), x_{n+1} = x_n + dt v_{n+1}, v_0 = 0.

Oracles: the momentumnet package (the authors' code) and the published recursion written
out in the tests; the inverse step is checked by running the forward steps back."""
import cmath

import pytest
import torch
from momentumnet import MomentumNet
from odenets.solvers import Momentum
from odes import saved_bytes
from torch import nn

from odenets import ODENet, solvers, zoo
from odenets.analysis import fit_order

F64 = torch.float64


def mlp(d: int = 6) -> nn.Module:
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, d))


def by_hand(fs, x, gammas, dt=1.0):
    """The paper's recursion in its velocity form, one gamma per step."""
    v = torch.zeros_like(x)
    for f, g in zip(fs, gammas):
        v = g * v + (1 - g) * f(x)
        x = x + dt * v
    return x


def grads(out, inputs):
    return torch.autograd.grad(out.square().sum(), inputs)


@pytest.mark.parametrize("shared", [False, True], ids=["per_step", "shared"])
@pytest.mark.parametrize("use_backprop", [True, False], ids=["backprop", "memory_saving"])
def test_matches_momentumnet(shared, use_backprop):
    """Same functions and gamma: same outputs and gradients (input and every weight) as the
    authors' MomentumNet, in its plain mode and in its memory-saving mode. That mode keeps v
    in 52-bit fixed point, reads it out in float32 and multiplies it by gamma rounded up to a
    multiple of 2^-16 (but takes 1 - gamma unrounded): hence its looser tolerance."""
    torch.manual_seed(0)
    steps, gamma = 12, 0.8
    tol = dict(rtol=1e-10, atol=1e-10) if use_backprop else dict(rtol=1e-4, atol=1e-4)
    fs = [mlp()] * steps if shared else [mlp() for _ in range(steps)]
    fs = [f.double() for f in fs]
    x = torch.randn(5, 6, dtype=F64, requires_grad=True)
    theirs = MomentumNet(fs, gamma=gamma, use_backprop=use_backprop)
    ours = ODENet(fs[0] if shared else fs, "momentum", steps=steps, gamma=gamma)
    params = list(ours.parameters())
    assert len(params) == (4 if shared else 4 * steps)
    out, ref = ours(x), theirs(x)
    assert (out - x).abs().max() > 0.1  # the steps did something
    torch.testing.assert_close(out, ref, **tol)
    for a, b in zip(grads(out, [x, *params]), grads(ref, [x, *params])):
        torch.testing.assert_close(a, b, **tol)


def test_trained_gamma_by_hand():
    """train_gamma: one gamma per step, starting at gamma; with carry_in every step has one,
    without it the first step (no x_{n-1}) has none and uses gamma. Outputs and gradients,
    those of the gammas included, match the recursion written out, at dt = 0.3."""
    torch.manual_seed(1)
    fs = [mlp().double() for _ in range(6)]
    x = torch.randn(4, 6, dtype=F64)
    for carry_in in (False, True):
        net = ODENet(fs, "momentum", dt=0.3, gamma=0.7, train_gamma=True, carry_in=carry_in).double()
        trained = [c["gamma"] for c in net.coefs if "gamma" in c]
        assert len(trained) == (6 if carry_in else 5)
        assert all(g.item() == pytest.approx(0.7) for g in trained)
        with torch.no_grad():
            for i, g in enumerate(trained):
                g.fill_(0.5 + 0.08 * i)
        gammas = ([] if carry_in else [0.7]) + trained
        out, ref = net(x), by_hand(fs, x, gammas, dt=0.3)
        torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
        for a, b in zip(grads(out, trained), grads(ref, trained)):
            assert a.abs() > 1e-6
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_two_step_form_and_registry():
    """The scheme is the linear two-step method alpha = (1 + gamma, -gamma),
    beta = (1 - gamma, 0); its options are checked where it is built."""
    scheme = solvers.get("momentum", gamma=0.25)
    assert isinstance(scheme, solvers.LinearMultistep) and scheme.invertible and scheme.history == 1
    assert scheme.coefficients.alpha == (1.25, -0.25) and scheme.coefficients.beta == (0.75, 0.0)
    assert solvers.get("momentum").gamma == 0.9
    for bad in (0.0, 1.0, -0.5, 1.5):
        with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\)"):
            solvers.get("momentum", gamma=bad)
    with pytest.raises(TypeError, match="gamma must be a number"):
        solvers.get("momentum", gamma="0.9")
    with pytest.raises(TypeError, match="train_gamma must be True or False"):
        solvers.get("momentum", train_gamma=1)
    with pytest.raises(ValueError, match="does not take option"):
        ODENet(mlp(), "momentum", steps=3, k_init=0.0)


def run(scheme, fs, dt, x, params=None):
    """Every state x_0..x_N and the past handed to each step, by the scheme's own step."""
    states, pasts, past = [x], [()], ()
    for n, f in enumerate(fs):
        x, record = scheme.step(solvers.timed(f), n * dt, dt, x, past, **(params[n] if params else {}))
        past = (record,)
        states.append(x)
        pasts.append(past)
    return states, pasts


def run_back(scheme, fs, dt, x, past, params=None):
    """x_0 from (x_N, past_N) by the inverse step, last step first."""
    for n in reversed(range(len(fs))):
        x, past = scheme.inverse(solvers.timed(fs[n]), n * dt, dt, x, past, **(params[n] if params else {}))
    return x, past


def test_inverse_step_recovers_every_state_float64():
    """Each float inverse step returns (x_n, past_n) of the forward run in float64 (to 1e-9:
    errors grow by up to 1 / gamma a step),
    with a time-dependent f (the inverse evaluates f at t_n) and trained per-step gammas."""
    torch.manual_seed(2)

    class Timed(nn.Module):
        def __init__(self):
            super().__init__()
            self.f = mlp()

        def forward(self, t, x):
            return self.f(x) * (1 + t)

    fs = [Timed().double() for _ in range(30)]
    params = [{"gamma": torch.tensor(0.6 + 0.01 * n, dtype=F64)} for n in range(30)]
    scheme = Momentum(gamma=0.6, train_gamma=True)
    with torch.no_grad():
        states, pasts = run(scheme, fs, 0.1, torch.randn(4, 6, dtype=F64), params)
        x, past = states[-1], pasts[-1]
        for n in reversed(range(30)):
            x, past = scheme.inverse(solvers.timed(fs[n]), n * 0.1, 0.1, x, past, **params[n])
            torch.testing.assert_close(x, states[n], rtol=0, atol=1e-9)
            # past_n[0] is (x_{n-1}, v_n); the first step started from x_{-1} = x_0, v_0 = 0
            torch.testing.assert_close(past[0].u, states[max(n - 1, 0)], rtol=0, atol=1e-9)
            torch.testing.assert_close(past[0].f, (states[n] - states[max(n - 1, 0)]) / 0.1, rtol=0, atol=1e-8)
    with pytest.raises(ValueError, match="needs past_next"):
        scheme.inverse(solvers.timed(fs[0]), 0.0, 0.1, x, ())


@pytest.mark.parametrize("dtype, depth, tol", [(torch.float32, 20, 1e-4), (torch.float32, 30, 1e-4),
                                               (torch.float64, 100, 1e-8)])
def test_inverse_round_trip(dtype, depth, tol):
    """gamma = 0.9, dt = 1, a 64-wide MLP per step: x_0 comes back from x_N to ``tol``
    relative at the depths docs/custom-schemes.md states (rounding errors grow by a little
    more than 1 / gamma per inverted step; benchmarks/bench_momentum_inverse.py measures
    how far they go)."""
    torch.manual_seed(3)
    fs = [mlp(64).to(dtype) for _ in range(depth)]
    scheme = Momentum(gamma=0.9)
    with torch.no_grad():
        states, pasts = run(scheme, fs, 1.0, torch.randn(32, 64, dtype=dtype))
        x0, _ = run_back(scheme, fs, 1.0, states[-1], pasts[-1])
    assert (states[-1] - states[0]).norm() > 0.5 * states[0].norm()  # the steps did something
    assert float((x0 - states[0]).norm() / states[0].norm()) < tol


def test_second_order_ode():
    """gamma = 1 - dt / eps makes the scheme a discretisation of eps x'' + x' = lambda x,
    x(0) = x0, x'(0) = 0 (v_0 = 0): first-order convergence to its exact solution."""
    eps, lam, T, x0 = 0.5, -1.5, 2.0, 1.0
    disc = cmath.sqrt(1 + 4 * eps * lam)  # roots of eps m^2 + m - lam: complex here, an oscillation
    m1, m2 = (-1 + disc) / (2 * eps), (-1 - disc) / (2 * eps)
    a = x0 * m2 / (m2 - m1)  # a + b = x0, a m1 + b m2 = 0
    exact = (a * cmath.exp(m1 * T) + (x0 - a) * cmath.exp(m2 * T)).real
    f = nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        f.weight.fill_(lam)
    steps = [40, 80, 160, 320, 640]
    errors = []
    for n in steps:
        net = ODENet(f, "momentum", steps=n, dt=T / n, gamma=1 - (T / n) / eps)
        with torch.no_grad():
            errors.append(abs(float(net(torch.full((1, 1), x0, dtype=F64))) - exact))
    slope = fit_order(torch.tensor([T / n for n in steps], dtype=F64), torch.tensor(errors, dtype=F64))
    assert slope == pytest.approx(1.0, abs=0.1)
    assert errors[-1] < 5e-3


def test_zoo_model():
    """The zoo builds its ResNets on the scheme as on any other one-function scheme."""
    torch.manual_seed(0)
    model = zoo.create("resnet56", solver="momentum", gamma=0.5, train_gamma=True)
    gammas = [p for name, p in model.named_parameters() if name.endswith("gamma")]
    assert len(gammas) == 8 + 8 + 8  # 9 blocks a stage; no gamma at the first step or at downsampling
    model(torch.randn(2, 3, 32, 32)).logsumexp(1).sum().backward()
    assert all(g.grad is not None and g.grad.abs() > 0 for g in gammas)


@pytest.mark.slow
def test_compiles_as_one_graph():
    """torch.compile (fullgraph, aot_eager) of a momentum net with trained gammas gives the
    eager outputs and gradients."""
    torch._dynamo.reset()
    torch.manual_seed(4)
    net = ODENet([mlp() for _ in range(4)], "momentum", dt=0.5, train_gamma=True).double()
    x = torch.randn(3, 6, dtype=F64)
    params = list(net.parameters())
    eager, compiled = net(x), torch.compile(net, backend="aot_eager", fullgraph=True)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-12, atol=1e-12)
    for g, w in zip(grads(compiled, params), grads(eager, params)):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


# -- memory-free training: the generic reversible engine on a multistep scheme ---------------

@pytest.mark.parametrize("train_gamma", [False, True])
def test_memory_efficient_gradients_equal_backprop(train_gamma):
    """The backward pass rebuilds (x_n, v_n) by inverting the steps: in float64 the
    gradients of the input, every weight and every trained gamma are plain backprop's."""
    torch.manual_seed(0)
    fs = [mlp().double() for _ in range(10)]
    x = torch.randn(5, 6, dtype=F64, requires_grad=True)
    plain = ODENet(fs, "momentum", gamma=0.8, train_gamma=train_gamma)
    efficient = ODENet(fs, "momentum", gamma=0.8, train_gamma=train_gamma, memory_efficient=True)
    efficient.load_state_dict(plain.state_dict())
    out_p, out_e = plain(x), efficient(x)
    torch.testing.assert_close(out_e, out_p, rtol=1e-8, atol=1e-10)  # the fixed point holds gamma to 2^-31
    inputs_p, inputs_e = [x, *plain.parameters()], [x, *efficient.parameters()]
    assert len(inputs_p) == 1 + 4 * 10 + (9 if train_gamma else 0)
    for a, b in zip(grads(out_e, inputs_e), grads(out_p, inputs_p)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_memory_efficient_matches_momentumnet_memory_saving_mode():
    torch.manual_seed(1)
    fs = [mlp().double() for _ in range(12)]
    x = torch.randn(5, 6, dtype=F64, requires_grad=True)
    ours = ODENet(fs, "momentum", gamma=0.8, memory_efficient=True)
    theirs = MomentumNet(fs, gamma=0.8, use_backprop=False)
    out, ref = ours(x), theirs(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)  # theirs rounds gamma to 2^-16
    for a, b in zip(grads(out, [x, *ours.parameters()]), grads(ref, [x, *ours.parameters()])):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_memory_efficient_saves_no_more_for_more_steps():
    torch.manual_seed(0)
    x = torch.randn(16, 6)
    plain, efficient = [], []
    for steps in (10, 40):
        fs = [mlp() for _ in range(steps)]
        plain.append(saved_bytes(ODENet(fs, "momentum", gamma=0.9), x))
        efficient.append(saved_bytes(ODENet(fs, "momentum", gamma=0.9, memory_efficient=True), x))
    assert efficient[1] <= efficient[0]
    assert plain[1] > 3 * plain[0]
    assert efficient[0] < plain[0]


def test_memory_efficient_zoo_model_trains():
    torch.manual_seed(0)
    model = zoo.create("resnet8", solver="momentum", preact=True, memory_efficient=True)
    model(torch.randn(2, 3, 16, 16)).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
