"""Steps that take context: net(u, **context) hands the same keyword arguments to every
evaluation of every step's function. Checked against a reference written here: the
conditioned field f(u, c) integrated by the scheme's own formula with c fixed, and
torchdiffeq for the adaptive solvers."""
import pytest
import torch
from torch import nn

from odenets import Carry, ODENet

F64 = torch.float64


class Conditioned(nn.Module):
    """f(u, c) = tanh(W u + V c): a field conditioned on c (a class embedding, a time embedding).
    The context is keyword-only: two required positional arguments would read as f(t, u)."""

    def __init__(self, d: int = 4, k: int = 3):
        super().__init__()
        self.w, self.v = nn.Linear(d, d).double(), nn.Linear(k, d, bias=False).double()

    def forward(self, u, *, cond):
        return torch.tanh(self.w(u) + self.v(cond))


class Timed(Conditioned):
    def forward(self, t, u, *, cond):
        return torch.tanh(self.w(u) + self.v(cond)) * (1 + t)


def _rk4(f, u, dt, steps, t0=0.0):
    """The classical Runge-Kutta method, written from its tableau."""
    t = t0
    for _ in range(steps):
        k1 = f(t, u)
        k2 = f(t + dt / 2, u + dt / 2 * k1)
        k3 = f(t + dt / 2, u + dt / 2 * k2)
        k4 = f(t + dt, u + dt * k3)
        u, t = u + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4), t + dt
    return u


@pytest.mark.parametrize("checkpoint", [False, True])
def test_every_rk4_stage_sees_the_context_and_it_gets_gradients(checkpoint):
    torch.manual_seed(0)
    f = Timed()
    net = ODENet(f, "rk4", steps=3, dt=0.25, checkpoint=checkpoint)
    u0, c = torch.randn(5, 4, dtype=F64), torch.randn(5, 3, dtype=F64, requires_grad=True)
    got = net(u0, cond=c)
    want = _rk4(lambda t, u: f(t, u, cond=c), u0, 0.25, 3)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    (g,) = torch.autograd.grad(got.sum(), c)
    (w,) = torch.autograd.grad(want.sum(), c)
    torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_revnet_pair_and_integrate_take_context():
    torch.manual_seed(0)
    F, G = Conditioned(2, 3), Conditioned(2, 3)
    net = ODENet([(F, G)], "revnet")
    u0, c = torch.randn(5, 4, dtype=F64), torch.randn(5, 3, dtype=F64)
    x, y = u0.chunk(2, dim=1)
    x = x + F(y, cond=c)
    y = y + G(x, cond=c)
    torch.testing.assert_close(net.integrate(Carry(u0), context={"cond": c}).u, torch.cat([x, y], 1))
    torch.testing.assert_close(net.inverse(torch.cat([x, y], 1), cond=c), u0)


@pytest.mark.parametrize("solver", ["polynet", "lm+sd", "euler+ss"])
def test_schemes_and_noise_wrappers_pass_the_context(solver):
    """Against the same net over blocks whose condition is fixed, in training mode (the
    noise drawn) under one seed."""
    torch.manual_seed(0)
    pair = solver.endswith("+ss")
    blocks = [(Conditioned(), Conditioned()) if pair else Conditioned() for _ in range(3)]
    u0, c = torch.randn(5, 4, dtype=F64), torch.randn(5, 3, dtype=F64)
    fixed = [tuple(_Fixed(f, c) for f in b) if pair else _Fixed(b, c) for b in blocks]
    net, plain = ODENet(blocks, solver, survival=0.5 if "sd" in solver else None), ODENet(fixed, solver)
    for a, b in zip(net.coefficients(), plain.coefficients()):
        b.data.copy_(a.data)
    for seed in range(3):
        torch.manual_seed(seed)
        got = net(u0, cond=c)
        torch.manual_seed(seed)
        torch.testing.assert_close(got, plain(u0))


class _Fixed(nn.Module):
    """A conditioned block with its condition fixed: the reference."""

    def __init__(self, block, c):
        super().__init__()
        self.block, self.c = block, c

    def forward(self, u):
        return self.block(u, cond=self.c)


def test_adaptive_solver_closes_over_the_context():
    torchdiffeq = pytest.importorskip("torchdiffeq")
    torch.manual_seed(0)
    f = Timed()
    u0, c = torch.randn(5, 4, dtype=F64), torch.randn(5, 3, dtype=F64, requires_grad=True)
    for adjoint in (False, True):
        net = ODENet(f, "dopri5", steps=2, dt=0.5, adjoint=adjoint)
        got = net(u0, cond=c)
        t = torch.tensor([0.0, 1.0], dtype=F64)
        want = torchdiffeq.odeint(lambda t, u: f(t, u, cond=c), u0, t, method="dopri5", rtol=1e-7, atol=1e-9)[-1]
        torch.testing.assert_close(got, want)
        (g,) = torch.autograd.grad(got.sum(), c)
        (w,) = torch.autograd.grad(want.sum(), c)
        torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-6)


def test_a_key_a_function_does_not_take_is_named():
    net = ODENet([Conditioned(), nn.Linear(4, 4).double()], "euler")
    u0, c = torch.randn(5, 4, dtype=F64), torch.randn(5, 3, dtype=F64)
    with pytest.raises(TypeError, match=r"'cond'.*step 1 \(Linear"):
        net(u0, cond=c)
    with pytest.raises(TypeError, match=r"'mask'.*step 0"):
        ODENet(Conditioned(), "euler", steps=2)(u0, cond=c, mask=c)


def test_a_function_with_kwargs_takes_any_key():
    class Any_(nn.Module):
        def forward(self, u, **kw):
            return u * kw["scale"]

    net = ODENet(Any_(), "euler", steps=2, dt=0.5)
    u0 = torch.ones(2, 3)
    torch.testing.assert_close(net(u0, scale=torch.tensor(2.0)), u0 * 4)


def test_compiled_with_a_tensor_context_is_one_graph():
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = ODENet([Conditioned() for _ in range(3)], "lm")
    u0, c = torch.randn(5, 4, dtype=F64), torch.randn(5, 3, dtype=F64)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(u0, cond=c), net(u0, cond=c), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("solver", ["momentum", "revnet"])
def test_memory_efficient_rebuilds_with_the_context_and_trains_it(solver):
    """The reversible engine re-evaluates each step with the forward pass's context; the
    context's tensors are inputs of its backward pass: gradients as with plain backprop."""
    torch.manual_seed(0)
    d = 2 if solver == "revnet" else 4
    blocks = [(Conditioned(d), Conditioned(d)) if solver == "revnet" else Conditioned(d) for _ in range(4)]
    u0 = torch.randn(5, 4, dtype=F64, requires_grad=True)
    c = torch.randn(5, 3, dtype=F64, requires_grad=True)
    mask = torch.ones(5, 1, dtype=torch.bool)  # a tensor without a gradient rides along
    results = []
    for memory_efficient in (False, True):
        net = ODENet(blocks, solver, memory_efficient=memory_efficient)
        out = net(u0, cond=c * mask)
        results.append((out, torch.autograd.grad(out.pow(2).sum(), [u0, c, *net.parameters()])))
    (want, want_grads), (got, got_grads) = results
    torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-8, atol=1e-9)
