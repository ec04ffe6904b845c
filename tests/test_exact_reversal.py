"""memory_efficient=True rebuilds every state bit for bit (schemes that declare
``exact_reversal``: revnet, momentum, a user's) or checks the drift of an inexact inverse.

Oracles: the states the forward pass fed each function (recorded by the function itself),
float64 plain backprop for the gradients, and momentumnet (the authors' code) in both its
modes."""
import math

import pytest
import torch
from momentumnet import MomentumNet
from odes import registered, saved_bytes
from torch import Tensor, nn

from odenets import Carry, ODENet, solvers
from odenets import reversible
from odenets.reversible import ReversalDrift, drift_tolerance
from odenets.solvers.fixed_point import FixedPoint, FixedPointRange

F64 = torch.float64
GAMMAS = [0.2, 0.5, 0.9, 0.99]


def mlp(d: int = 32, hidden: int = 64) -> nn.Module:
    return nn.Sequential(nn.Linear(d, hidden), nn.Tanh(), nn.Linear(hidden, d))


class Seen(nn.Module):
    """A block that keeps a copy of every input it is given."""

    def __init__(self, d: int):
        super().__init__()
        self.f, self.inputs = mlp(d, 16), []

    def forward(self, x: Tensor) -> Tensor:
        self.inputs.append(x.detach().clone())
        return self.f(x)


def rel(a: Tensor, b: Tensor) -> float:
    return float((a.double() - b.double()).norm() / b.double().norm())


NETS = {
    "revnet": lambda depth: ODENet([(Seen(4), Seen(4)) for _ in range(depth)], "revnet", memory_efficient=True),
    **{f"momentum {g}": (lambda depth, g=g: ODENet([Seen(8) for _ in range(depth)], "momentum", gamma=g,
                                                   memory_efficient=True)) for g in GAMMAS},
    "momentum, trained gamma": lambda depth: ODENet([Seen(8) for _ in range(depth)], "momentum", gamma=0.7,
                                                    train_gamma=True, memory_efficient=True),
}


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "autocast bf16"])
@pytest.mark.parametrize("name", NETS)
def test_every_state_is_rebuilt_bit_for_bit(name, autocast):
    """Each function sees its input twice: in the forward pass and in the inverse step,
    whose evaluation (with autograd on) the recomputation that differentiates the step
    takes instead of evaluating again. The two are the same bits, at depth 300, float32
    and under bfloat16 autocast; trained gammas vary by step."""
    torch.manual_seed(0)
    net = NETS[name](300)
    with torch.no_grad():
        for n, c in enumerate(net.coefs):
            if "gamma" in c:
                c["gamma"].fill_(0.3 + 0.6 * n / 300)
    x = torch.randn(5, 8, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        out = net(x)
    out.float().square().sum().backward()
    seen = [m for m in net.modules() if isinstance(m, Seen)]
    assert len(seen) == 600 if name == "revnet" else 300
    for m in seen:
        assert len(m.inputs) == 2
        forward, inverse = m.inputs
        assert torch.equal(inverse, forward)
    assert x.grad is not None and torch.isfinite(x.grad).all()


def _truth_and_ours(solver: str, depth: int, dt: float, **options):
    """Output and gradients (input, first and last blocks' first weights, all trained gammas) of
    float64 plain backprop, float32 plain backprop and float32 memory_efficient=True."""
    torch.manual_seed(0)
    pair = solver == "revnet"
    fs = [(mlp(16, 32), mlp(16, 32)) if pair else mlp() for _ in range(depth)]
    x = torch.randn(8, 32)
    results = []
    for dtype, efficient in ((F64, False), (torch.float32, False), (torch.float32, True)):
        net = ODENet(fs, solver, dt=dt, memory_efficient=efficient, **options).to(dtype)
        u = x.to(dtype).requires_grad_(True)
        out = net(u)
        first, last = net.fns[0], net.fns[-1]
        weights = [first[0][0].weight, last[1][0].weight] if pair else [first[0].weight, last[0].weight]
        coefs = list(net.coefficients())
        grads = torch.autograd.grad(out.square().sum(), [u, *weights, *coefs])
        results.append([out.detach(), *grads[:3]] + ([torch.stack(grads[3:])] if coefs else []))
    return results


SETTINGS = [(100, 1.0), pytest.param(1000, 0.1, marks=pytest.mark.slow)]


@pytest.mark.parametrize("depth, dt", SETTINGS, ids=["depth 100", "depth 1000, dt 0.1"])
@pytest.mark.parametrize("gamma", GAMMAS)
def test_momentum_gradients_are_float32_round_off_from_float64_truth(gamma, depth, dt):
    """MLP blocks 32-64-32: output and gradients within 1e-5 of float64 plain backprop, at
    any gamma, as close as float32 plain backprop is (dt = 0.1 at depth 1000: at dt = 1 the
    problem itself is so ill-conditioned that plain float32 backprop errs by 1e-4 to 1e-3,
    which docs/exact-reversal.md shows)."""
    truth, plain, ours = _truth_and_ours("momentum", depth, dt, gamma=gamma)
    for t, p, o in zip(truth, plain, ours):
        assert rel(o, t) <= 1e-5
        assert rel(o, t) <= 2 * rel(p, t) + 1e-6


@pytest.mark.parametrize("depth, dt", SETTINGS, ids=["depth 100", "depth 1000, dt 0.1"])
def test_trained_gamma_and_revnet_gradients_are_float32_round_off(depth, dt):
    for solver, options in (("momentum", dict(gamma=0.6, train_gamma=True)), ("revnet", {})):
        truth, plain, ours = _truth_and_ours(solver, depth, dt, **options)
        assert len(truth) == (5 if solver == "momentum" else 4)  # output, x, 2 weights, gammas
        for t, p, o in zip(truth, plain, ours):
            assert rel(o, t) <= 1e-5
            assert rel(o, t) <= 2 * rel(p, t) + 1e-6


@pytest.mark.parametrize("gamma, depth", [(0.9, 100), (0.5, 60), (0.2, 30),
                                          pytest.param(0.9, 1000, marks=pytest.mark.slow)])
def test_against_momentumnet_in_both_modes(gamma, depth):
    """The issue's settings (and depth 1000, dt = 1): in float32 our plain backprop is the
    velocity form of momentumnet's (same outputs and gradients to round-off), and ours without
    stored states is as accurate as plain backprop, where momentumnet's memory-saving mode
    (gamma rounded to 2^-16, its inverse in float32) loses the gradient."""
    torch.manual_seed(0)
    fs = [mlp() for _ in range(depth)]
    x = torch.randn(8, 32)

    def run(model, dtype):
        u = x.to(dtype).requires_grad_(True)
        out = model(u)
        return [out.detach(), *torch.autograd.grad(out.square().sum(), [u, fs[0][0].weight])]

    theirs = run(MomentumNet(fs, gamma=gamma, use_backprop=True), torch.float32)
    theirs_saving = run(MomentumNet(fs, gamma=gamma, use_backprop=False), torch.float32)
    plain = run(ODENet(fs, "momentum", gamma=gamma), torch.float32)
    ours = run(ODENet(fs, "momentum", gamma=gamma, memory_efficient=True), torch.float32)
    for f in fs:
        f.double()
    truth = run(MomentumNet(fs, gamma=gamma, use_backprop=True), F64)
    for t, a, b in zip(truth, plain, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))
        assert rel(a, t) <= 1.05 * rel(b, t) + 1e-7  # no worse than momentumnet's float32 error
    for t, o, p, s in zip(truth, ours, plain, theirs_saving):
        assert rel(o, t) <= 2 * rel(p, t) + 1e-6
        assert rel(o, t) <= rel(s, t)
    assert rel(ours[1], truth[1]) < 1e-2 < rel(theirs_saving[1], truth[1]) or depth == 30 or gamma == 0.9


# -- what exactness costs in memory ----------------------------------------------------------

@pytest.mark.slow
def test_revnet_memory_is_flat_in_depth():
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    sizes = [saved_bytes(ODENet([(mlp(4, 8), mlp(4, 8)) for _ in range(d)], "revnet", memory_efficient=True), x)
             for d in (10, 100, 1000)]
    assert sizes[0] == sizes[1] == sizes[2]


@pytest.mark.parametrize("gamma", GAMMAS)
def test_momentum_memory_grows_by_about_log2_one_over_gamma_bits_a_step(gamma):
    """From depth 100 to 1000 the saved tensors grow by the bits the multiplications by gamma
    drop: at most log2(ceil(1 / gamma)) + 0.2 bits a number a step, plus one 4-byte chunk a
    number (what was not yet pushed), far below the 32 bits a stored float32 state costs
    (bench_reversible.py measures it at depth 1000)."""
    torch.manual_seed(0)
    x = torch.randn(16, 8)
    size = {d: saved_bytes(ODENet([mlp(8, 8) for _ in range(d)], "momentum", gamma=gamma, memory_efficient=True), x)
            for d in (10, 100, 500)}
    bits_per_step = (size[500] - size[100]) * 8 / x.numel() / 400
    assert size[10] <= size[100] <= size[500]
    assert bits_per_step <= math.log2(math.ceil(1 / gamma)) + 0.2 + 32 / 400
    assert bits_per_step >= 0.5 * math.log2(1 / gamma) - 32 / 400


# -- a user's scheme: declared exact, or checked --------------------------------------------

class Coupling(solvers.RevNet):
    """A user's exactly reversible scheme (an additive coupling, declared as RevNet is, but
    without a hand-written vjp: the engine recomputes its step)."""

    name = "coupling"
    vjp = False


class RecomputedMomentum(solvers.Momentum):
    """Momentum without its hand-written vjp: the engine recomputes its step."""

    name = "recomputed_momentum"
    vjp = False


class FloatCoupling(solvers.RevNet):
    """Invertible only: the float inverse, whose rounding the engine checks."""

    name = "float_coupling"
    exact_reversal = False


class Leaky(FloatCoupling):
    """A deliberately inexact inverse: it undoes 1 - 1e-3 of each update."""

    name = "leaky"

    def inverse(self, f, t, dt, u, past, **params):
        return super().inverse(f, t, dt * (1 - 1e-3), u, past)


def test_a_users_exact_scheme_is_rebuilt_bit_for_bit():
    with registered({"coupling": Coupling}):
        torch.manual_seed(0)
        net = ODENet([(Seen(4), Seen(4)) for _ in range(50)], "coupling", memory_efficient=True)
        net(torch.randn(3, 8)).sum().backward()
        seen = [m for m in net.modules() if isinstance(m, Seen)]
        for m in seen:  # the forward pass and the inverse; the recomputation reuses the inverse's evaluation
            assert len(m.inputs) == 2 and torch.equal(m.inputs[1], m.inputs[0])


@pytest.mark.parametrize("solver, nested, recomputed", [("momentum", 0, 0), ("revnet", 0, 0),
                                                      ("recomputed_momentum", 0, 1), ("coupling", 2, 1)])
def test_the_inverses_evaluations_serve_the_gradients_without_nested_autograd_calls_where_they_can(
        monkeypatch, solver, nested, recomputed):
    """Momentum and revnet declare a vjp: no recomputation, each evaluation's graph
    differentiated once. Without it the step is recomputed: momentum's inverse evaluates f
    at the very state the recomputation starts from, so the step is differentiated through
    that evaluation's graph with no nested call; a coupling's G reads an intermediate, so
    each of its two evaluations bridges in with a nested call."""
    calls = []
    for name, where in (("apply", reversible._Reused), ("_differentiate", reversible)):
        original = getattr(where, name)
        wrapped = (lambda o, n: lambda *a: calls.append(n) or o(*a))(original, name)
        monkeypatch.setattr(where, name, staticmethod(wrapped) if name == "apply" else wrapped)
    torch.manual_seed(0)
    with registered({"coupling": Coupling, "recomputed_momentum": RecomputedMomentum}):
        fs = [(mlp(4, 8), mlp(4, 8)) if solver in ("revnet", "coupling") else mlp(8, 16) for _ in range(5)]
        net, plain = (ODENet(fs, solver, memory_efficient=m) for m in (True, False))
        x = torch.randn(3, 8, requires_grad=True)
        got = torch.autograd.grad(net(x).square().sum(), [x, *net.parameters()])
    truth = torch.autograd.grad(plain(x).square().sum(), [x, *plain.parameters()])
    assert calls.count("apply") == nested * 5 and calls.count("_differentiate") == recomputed * 5
    assert all(torch.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in zip(got, truth))


@pytest.mark.parametrize("autocast", [False, True], ids=["float32", "autocast bf16"])
@pytest.mark.parametrize("dt", [1.0, 0.3])
@pytest.mark.parametrize("solver, twin", [("revnet", "coupling"), ("momentum", "recomputed_momentum")])
def test_a_hand_written_vjp_gives_the_recomputations_gradients(solver, twin, autocast, dt):
    """Each scheme's vjp against the recomputation of the same step (its twin without one)
    and plain backprop, to the input and the weights, from a loss that reads the state and
    the history the last step leaves (momentum's record of x_{N-1} and v_N)."""
    torch.manual_seed(0)
    blocks = [(mlp(4, 8), mlp(4, 8)) if solver == "revnet" else mlp(8, 16) for _ in range(20)]
    options = {} if solver == "revnet" else {"gamma": 0.6}
    x = torch.randn(6, 8, requires_grad=True)
    weights = torch.randn(2, 6, 8)
    grads = {}
    with registered({"coupling": Coupling, "recomputed_momentum": RecomputedMomentum}):
        for name, scheme, me in (("vjp", solver, True), ("recomputed", twin, True), ("plain", solver, False)):
            net = ODENet(blocks, scheme, dt=dt, memory_efficient=me, **options)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                out, past = net.integrate(Carry(x))
            loss = out.float().square().sum() + sum((w * t.float()).sum() for r in past for w, t in zip(weights, r))
            grads[name] = torch.autograd.grad(loss, [x, *net.parameters()])
    for a, b, c in zip(grads["vjp"], grads["recomputed"], grads["plain"], strict=True):
        close = 1e-2 if autocast else 1e-6  # bfloat16 rounds a product by a number before or after the cast
        torch.testing.assert_close(a, b, rtol=close, atol=close * float(b.abs().max()))
        tolerance = 5e-2 if autocast else 1e-5
        torch.testing.assert_close(a, c, rtol=tolerance, atol=tolerance * float(c.abs().max()))


@pytest.mark.parametrize("memory_efficient", [False, True])
def test_a_history_handed_in_without_the_velocity_gets_its_gradients(memory_efficient):
    """A record of x_{-1} alone (from another scheme's stage) gives momentum's first step
    v_0 = (x_0 - x_{-1}) / dt; the backward pass rebuilds the history with the velocity and
    hands the gradient back to x_{-1}, as plain backprop does (it raised before)."""
    torch.manual_seed(0)
    fs = [mlp(8, 16).double() for _ in range(6)]
    x, before = (torch.randn(3, 8, dtype=F64, requires_grad=True) for _ in range(2))

    def loss(net: ODENet) -> Tensor:
        out, past = net.integrate(Carry(x, (solvers.Record(before, None),)))
        return out.square().sum() + (past[0].f * past[0].u).sum()

    truth = torch.autograd.grad(loss(ODENet(fs, "momentum", dt=0.5, gamma=0.7)), [x, before, *fs[0].parameters()])
    got = torch.autograd.grad(loss(ODENet(fs, "momentum", dt=0.5, gamma=0.7, memory_efficient=memory_efficient)),
                              [x, before, *fs[0].parameters()])
    for a, b in zip(got, truth, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert float(got[1].abs().max()) > 0.1


@pytest.mark.parametrize("solver", ["momentum", "revnet"])
def test_an_empty_batch_goes_through_as_with_plain_backprop(solver):
    """Deep enough at gamma 0.5 (a bit a step) for momentum's buffers to be checked for room."""
    fs = [(mlp(4, 8), mlp(4, 8)) if solver == "revnet" else mlp(8, 16) for _ in range(80)]
    x = torch.empty(0, 8, requires_grad=True)
    net = ODENet(fs, solver, memory_efficient=True, **({"gamma": 0.5} if solver == "momentum" else {}))
    net(x).square().sum().backward()
    assert x.grad.shape == (0, 8)
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())  # zeros, as plain backprop's


class Skipping(solvers.RevNet):
    """A scheme that breaks the contract of exact reversal: its inverse leaves out F."""

    name = "skipping"

    def fixed_inverse(self, f, t, dt, carrier, fx, **params):
        X, Y = carrier
        return X, Y - fx.fixed(f[1](t, fx.float(X)), dt)


def test_an_inverse_that_leaves_out_an_evaluation_is_named():
    with registered({"skipping": Skipping}):
        net = ODENet([(mlp(4, 8), mlp(4, 8)) for _ in range(3)], "skipping", memory_efficient=True)
        with pytest.raises(RuntimeError, match=r"step 2: Skipping.fixed_inverse evaluated function 0 0 time\(s\), "
                                               r"its step more"):
            net(torch.randn(3, 8, requires_grad=True)).sum().backward()


def test_an_invertible_scheme_without_exactness_is_checked():
    """Float inverse: within tolerance it trains as plain backprop; an inexact inverse
    raises, naming the step; the stored states are O(sqrt(depth))."""
    with registered({"float_coupling": FloatCoupling, "leaky": Leaky}):
        torch.manual_seed(0)
        pairs = [(mlp(4, 8).double(), mlp(4, 8).double()) for _ in range(16)]
        x = torch.randn(3, 8, dtype=F64, requires_grad=True)
        grads = [torch.autograd.grad(ODENet(pairs, "float_coupling", memory_efficient=me)(x).sum(), x)[0]
                 for me in (False, True)]
        torch.testing.assert_close(grads[1], grads[0], rtol=1e-10, atol=1e-12)
        with pytest.raises(ReversalDrift, match=r"the state before step 12, .* drifted .* beyond the tolerance "
                                                r"1\.5e-08 .* not exact enough"):
            ODENet(pairs, "leaky", memory_efficient=True)(x).sum().backward()
        u = torch.randn(16, 8)
        size = {d: saved_bytes(ODENet([(mlp(4, 8), mlp(4, 8)) for _ in range(d)], "float_coupling",
                                      memory_efficient=True), u) for d in (16, 64, 256)}
        state = u.numel() * 4
        assert [size[d] // state for d in (16, 64, 256)] == [1 + 4, 1 + 8, 1 + 16]  # the output, sqrt(N) kept
    assert drift_tolerance(torch.float32) == pytest.approx(3.45e-4, rel=1e-2)


def test_states_beyond_the_fixed_point_range_are_refused():
    fx = FixedPoint(torch.float32)
    fx.fixed(torch.tensor([1e6]))
    fx.verify()  # within range: |x| < 2^20
    fx.fixed(torch.tensor([2e6]))  # checked on the device, read once at the end of the pass
    with pytest.raises(FixedPointRange, match=r"magnitude 2e\+06 is beyond the fixed-point range of exact reversal "
                                              r"\(\|x\| < 2\^20 for a torch.float32 state"):
        fx.verify()
    fx.float(torch.tensor([2.0 ** 53], dtype=torch.float64))
    with pytest.raises(FixedPointRange):
        fx.verify()
    fx = FixedPoint(torch.float64)
    fx.fixed(torch.tensor([8000.0], dtype=torch.float64))
    fx.verify()
    fx.fixed(torch.tensor([9000.0], dtype=torch.float64))
    with pytest.raises(FixedPointRange, match=r"\(\|x\| < 2\^13 for a torch.float64 state"):
        fx.verify()
    with pytest.raises(FixedPointRange, match="ratio in"):
        fx.ratio(1.0)
    net = ODENet(mlp(8, 8), "momentum", steps=3, memory_efficient=True)
    with pytest.raises(FixedPointRange):
        net(torch.full((2, 8), float("nan"), requires_grad=True))


def test_the_ratio_is_exact_for_float32_gammas_and_small_fractions():
    fx = FixedPoint(torch.float32)
    assert fx.ratio(0.9) == (9, 10) and fx.ratio(0.99) == (99, 100)
    g = torch.tensor(0.7123)  # a float32 parameter: a multiple of 2^-24
    n, d = fx.ratio(g)
    assert n / d == float(g)
    for dtype, largest in ((torch.float32, 2 ** 51), (torch.float64, 2 ** 60)):  # integers held in float64, int64
        fx = FixedPoint(dtype)
        V = torch.randint(-largest, largest, (1000,)).to(fx.carrier)
        for n, d in (fx.ratio(g), fx.ratio(0.9), fx.ratio(0.013)):
            W, B = fx.scale_down(V, (n, d), fx.zeros(V.shape, V.device))
            assert torch.equal(W.long(), torch.tensor([v * n // d for v in V.long().tolist()]))  # Python's floor
            assert torch.equal(fx.scale_up(W, (n, d), B)[0], V)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_the_carrier_moves_by_the_rounded_value_whatever_the_precision_it_is_rounded_in(dtype):
    """FixedPoint.add rounds x 2^bits in float32 when the scale is a power of two; the
    integers must be those of the float64 rounding (an independent computation here)."""
    fx = FixedPoint(dtype)
    torch.manual_seed(0)
    x = (torch.randn(4000, dtype=torch.float64) * torch.logspace(-12, 3, 4000, dtype=torch.float64)).to(dtype)
    X = fx.fixed(torch.randn(4000, dtype=dtype))
    for scale in (1.0, 0.5, 2.0, 0.1, 0.75):
        truth = torch.tensor([round(v * scale * 2 ** fx.bits) for v in x.double().tolist()], dtype=torch.float64)
        assert torch.equal(fx.add(X, x, scale).double(), X.double() + truth)
        assert torch.equal(fx.add(X, x, scale, sign=-1).double(), X.double() - truth)
    fx.verify()
    fx.add(X, torch.full((4000,), 2.0 ** 14, dtype=dtype), 64.0)  # beyond 2^20 (2^13 for float64): refused
    with pytest.raises(FixedPointRange):
        fx.verify()
