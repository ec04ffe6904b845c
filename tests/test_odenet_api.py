"""ODENet's API, checked against hand-written loops: the forms of f, the time, the
trajectory, dtypes and batches, state_dict, shape-changing steps, chaining, checkpointing."""
import pytest
import torch
from odes import registered
from torch import nn

from odenets import Carry, ODENet

F64 = torch.float64
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def block(d: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(d, d), nn.Tanh()).double()


def _euler(fs, u, dt=1.0):
    for f in fs:
        u = u + dt * f(u)
    return u


# -- the forms of f --------------------------------------------------------------------

def test_shared_module_is_applied_at_every_step():
    torch.manual_seed(0)
    f = block()
    net = ODENet(f, "euler", steps=5, dt=0.3)
    assert len(net.fns) == 1 and net.fns[0] is f and net.steps == 5
    u0 = torch.randn(3, 4, dtype=F64)
    torch.testing.assert_close(net(u0), _euler([f] * 5, u0, 0.3), rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("kind", ["list", "tuple", "ModuleList"])
def test_sequence_gives_one_module_per_step(kind):
    torch.manual_seed(0)
    fs = [block() for _ in range(4)]
    f = {"list": list, "tuple": tuple, "ModuleList": nn.ModuleList}[kind](fs)
    net = ODENet(f, "euler")
    assert net.steps == 4 and all(a is b for a, b in zip(net.fns, fs))
    u0 = torch.randn(3, 4, dtype=F64)
    torch.testing.assert_close(net(u0), _euler(fs, u0), rtol=1e-14, atol=1e-14)


def test_factory_is_called_once_per_step_in_order():
    torch.manual_seed(0)
    made, calls = [], []

    def factory(i):
        calls.append(i)
        made.append(block())
        return made[-1]

    net = ODENet(factory, "euler", steps=4, dt=0.5)
    assert calls == [0, 1, 2, 3]
    u0 = torch.randn(2, 4, dtype=F64)
    torch.testing.assert_close(net(u0), _euler(made, u0, 0.5), rtol=1e-14, atol=1e-14)


def test_pair_forms_for_revnet():
    """A shared pair, a list of pairs and a factory of pairs give the same net."""
    torch.manual_seed(0)
    F, G = block(2), block(2)
    u0 = torch.randn(3, 4, dtype=F64)
    outs = [ODENet((F, G), "revnet", steps=3)(u0), ODENet([(F, G)] * 3, "revnet")(u0),
            ODENet(lambda i: (F, G), "revnet", steps=3)(u0)]
    x, y = u0[:, :2], u0[:, 2:]
    for _ in range(3):
        x = x + F(y)
        y = y + G(x)
    for out in outs:
        torch.testing.assert_close(out, torch.cat((x, y), 1), rtol=1e-14, atol=1e-14)


# -- the time ------------------------------------------------------------------------

class Clock(nn.Module):
    """f(t, u) = -u, recording every t it is called with."""

    def __init__(self):
        super().__init__()
        self.times = []

    def forward(self, t, u):
        self.times.append(float(t))
        return -u


@pytest.mark.parametrize("solver,stages", [
    ("euler", [0.0]), ("midpoint", [0.0, 0.5]), ("rk4", [0.0, 0.5, 0.5, 1.0]), ("lm", [0.0]),
    ("polynet", [1.0, 1.0]),  # backward Euler evaluates at t_{n+1}
])
def test_f_gets_t_n(solver, stages):
    t0, dt, steps = 0.25, 0.1, 4
    f = Clock()
    ODENet(f, solver, steps=steps, dt=dt, t0=t0)(torch.ones(1, 2))
    want = [t0 + n * dt + c * dt for n in range(steps) for c in stages]
    assert f.times == pytest.approx(want, abs=1e-12)


def test_ab_starter_then_one_time_per_step():
    f = Clock()
    ODENet(f, "ab2", steps=3, dt=0.5)(torch.ones(1, 2))
    assert f.times == pytest.approx([0.0, 0.5, 0.5, 1.0])  # step 0 by Heun, then f(t_n) once per step


def test_per_step_timed_modules_and_pairs():
    clocks = [(Clock(), Clock()) for _ in range(3)]
    ODENet(clocks, "revnet", dt=2.0, t0=1.0)(torch.ones(1, 4))
    assert [(F.times, G.times) for F, G in clocks] == [([1.0], [1.0]), ([3.0], [3.0]), ([5.0], [5.0])]


# -- the trajectory -------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["euler", "rk4", "lm", "ab3"])
def test_trajectory_is_every_state(solver):
    """State n of the trajectory is the output of the same net cut to n steps."""
    torch.manual_seed(0)
    f = block()
    kw = {"k_init": -0.05} if solver == "lm" else {}
    u0 = torch.randn(5, 4, dtype=F64)
    out = ODENet(f, solver, steps=6, dt=0.2, return_trajectory=True, **kw)(u0)
    assert out.shape == (7, 5, 4)
    assert torch.equal(out[0], u0)
    for n in range(1, 7):
        torch.testing.assert_close(out[n], ODENet(f, solver, steps=n, dt=0.2, **kw)(u0), rtol=1e-14, atol=1e-14)


# -- dtypes, devices, batches ---------------------------------------------------------

@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("solver", ["euler", "rk4", "lm", "revnet"])
def test_dtype_device_and_batch(solver, dtype, device):
    """The output keeps the input's dtype and device, and each sample of a batch of 5
    is what a batch of 1 gives it."""
    torch.manual_seed(0)
    f = (nn.Linear(2, 2), nn.Linear(2, 2)) if solver == "revnet" else nn.Sequential(nn.Linear(4, 4), nn.Tanh())
    net = ODENet(f, solver, steps=4, dt=0.5).to(device=device, dtype=dtype)
    u = torch.randn(5, 4, dtype=dtype, device=device)
    out = net(u)
    assert out.dtype == dtype and out.device == u.device and out.shape == (5, 4)
    tol = 1e-6 if dtype == torch.float32 else 1e-14
    for i in range(5):
        torch.testing.assert_close(net(u[i:i + 1]), out[i:i + 1], rtol=tol, atol=tol)


def test_images_as_state():
    torch.manual_seed(0)
    convs = [nn.Conv2d(3, 3, 3, padding=1).double() for _ in range(3)]
    u0 = torch.randn(2, 3, 6, 6, dtype=F64)
    torch.testing.assert_close(ODENet(convs, "euler")(u0), _euler(convs, u0), rtol=1e-14, atol=1e-14)


# -- state_dict ---------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["lm", "fractal"])
def test_state_dict_round_trip(solver):
    def make():
        pairs = solver == "fractal"
        return ODENet(lambda i: (block(), block()) if pairs else block(), solver, steps=4,
                      **({"k_init": (-0.5, 0.5)} if solver == "lm" else {})).double()

    torch.manual_seed(0)
    net = make()
    with torch.no_grad():  # move the learned coefficients off their initial values
        for p in net.coefficients():
            p.add_(torch.randn_like(p))
    torch.manual_seed(1)
    fresh = make()
    u0 = torch.randn(3, 4, dtype=F64)
    assert not torch.allclose(fresh(u0), net(u0))
    fresh.load_state_dict(net.state_dict())
    assert torch.equal(fresh(u0), net(u0))


# -- shape-changing steps -------------------------------------------------------------

class Down(nn.Module):
    """A downsampling block 4 -> 2, whose step takes the shortcut ``P``."""

    def __init__(self):
        super().__init__()
        self.f = nn.Linear(4, 2).double()

    def forward(self, u):
        return torch.tanh(self.f(u))


def projection() -> nn.Module:
    return nn.Linear(4, 2, bias=False).double()


def test_shortcut_step_is_p_plus_f():
    torch.manual_seed(0)
    fs, P = [block(4), Down(), block(2)], projection()
    u0 = torch.randn(3, 4, dtype=F64)
    with torch.no_grad():
        u1 = u0 + 0.5 * fs[0](u0)
        u2 = P(u1) + 0.5 * fs[1](u1)
        u3 = u2 + 0.5 * fs[2](u2)
        got = ODENet(fs, "euler", dt=0.5, shortcuts=[None, P, None], return_trajectory=True)(u0)
    assert isinstance(got, list) and [tuple(s.shape) for s in got] == [(3, 4), (3, 4), (3, 2), (3, 2)]
    torch.testing.assert_close(got[-1], u3, rtol=1e-14, atol=1e-14)


def test_lm_takes_the_resnet_step_at_a_shortcut_and_carries_p_of_u_n_on():
    """As in LM-ResNet's authors' code: u_{n+1} = P(u_n) + f_n(u_n) at the transition,
    which has no k, and the next step reads P(u_n) as its u_{n-1}."""
    torch.manual_seed(0)
    fs, P = [block(4), block(4), Down(), block(2)], projection()
    net = ODENet(fs, "lm", k_init=(-0.5, 0.5), shortcuts={2: P}).double()
    k = [c["k"] if "k" in c else None for c in net.coefs]
    assert k[0] is None and k[2] is None and k[1] is not None and k[3] is not None
    u0 = torch.randn(3, 4, dtype=F64)
    with torch.no_grad():
        u1 = u0 + fs[0](u0)
        u2 = (1 - k[1]) * u1 + k[1] * u0 + fs[1](u1)
        u3 = P(u2) + fs[2](u2)
        u4 = (1 - k[3]) * u3 + k[3] * P(u2) + fs[3](u3)
        torch.testing.assert_close(net(u0), u4, rtol=1e-14, atol=1e-14)


def test_first_step_shortcut_is_the_resnet_transition():
    torch.manual_seed(0)
    fs, P = [Down(), block(2)], projection()
    net = ODENet(fs, "lm", k_init=(-0.5, 0.5), shortcuts={0: P}).double()
    u0 = torch.randn(3, 4, dtype=F64)
    with torch.no_grad():
        u1 = P(u0) + fs[0](u0)
        u2 = (1 - net.coefs[1]["k"]) * u1 + net.coefs[1]["k"] * P(u0) + fs[1](u1)
        torch.testing.assert_close(net(u0), u2, rtol=1e-14, atol=1e-14)


# -- chaining stages ------------------------------------------------------------------

@pytest.mark.parametrize("solver", ["lm", "ab3"])
def test_carry_chains_two_nets_into_one(solver):
    torch.manual_seed(0)
    first, second = [block() for _ in range(3)], [block() for _ in range(4)]
    kw = {"k_init": -0.3} if solver == "lm" else {}
    whole = ODENet(first + second, solver, **kw).double()
    a, b = ODENet(first, solver, **kw).double(), ODENet(second, solver, carry_in=True, **kw).double()
    u0 = torch.randn(3, 4, dtype=F64)
    carry = a.integrate(Carry(u0))
    assert len(carry.past) == whole.scheme.history
    torch.testing.assert_close(b.integrate(carry).u, whole(u0), rtol=1e-14, atol=1e-14)
    # without the history the second stage restarts, and differs
    assert not torch.allclose(ODENet(second, solver, **kw)(a(u0)), whole(u0))


# -- post-activation ------------------------------------------------------------------

def test_activation_after_each_step():
    torch.manual_seed(0)
    fs = [block() for _ in range(3)]
    u0 = torch.randn(3, 4, dtype=F64)
    u = u0
    for f in fs:
        u = torch.relu(u + f(u))
    torch.testing.assert_close(ODENet(fs, "euler", activation=nn.ReLU())(u0), u, rtol=1e-14, atol=1e-14)


# -- checkpointing --------------------------------------------------------------------

def _out_and_grads(net, u0, seed=0):
    torch.manual_seed(seed)
    u = u0.clone().requires_grad_(True)
    out = net(u)
    out.pow(2).sum().backward()
    grads = [u.grad] + [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    return out.detach(), grads


CHECKPOINTED = [("euler", {}), ("rk4", {}), ("lm", {}), ("ab3", {}), ("revnet", {}), ("fractal", {}),
                ("lm", {"noise": "stochastic_depth"}), ("euler", {"noise": "shake_shake"}),
                ("euler_maruyama", {"diffusion": 0.3})]


@pytest.mark.parametrize("solver,options", CHECKPOINTED, ids=[f"{s}-{o}" for s, o in CHECKPOINTED])
def test_checkpoint_gives_the_same_outputs_and_gradients(solver, options):
    """In training mode too: the recomputation redraws the same noise."""
    torch.manual_seed(0)
    pair = solver in ("revnet", "fractal") or options.get("noise") == "shake_shake"
    d = 2 if solver == "revnet" else 4
    fs = [(block(d), block(d)) if pair else block(d) for _ in range(5)]
    u0 = torch.randn(6, 4, dtype=F64)
    plain = ODENet(fs, solver, dt=0.5, **options).double().train()
    ckpt = ODENet(fs, solver, dt=0.5, checkpoint=True, **options).double().train()
    ckpt.load_state_dict(plain.state_dict())
    (out_p, grads_p), (out_c, grads_c) = _out_and_grads(plain, u0), _out_and_grads(ckpt, u0)
    torch.testing.assert_close(out_c, out_p, rtol=1e-14, atol=1e-14)
    assert len(grads_c) == len(grads_p)
    for gc, gp in zip(grads_c, grads_p):
        assert gc is not None and gp is not None
        torch.testing.assert_close(gc, gp, rtol=1e-12, atol=1e-14)


def test_checkpoint_across_a_shortcut():
    torch.manual_seed(0)
    fs, P = [block(4), block(4), Down(), block(2)], projection()
    u0 = torch.randn(3, 4, dtype=F64)
    plain = ODENet(fs, "lm", shortcuts={2: P}).double()
    ckpt = ODENet(fs, "lm", shortcuts={2: P}, checkpoint=True).double()
    ckpt.load_state_dict(plain.state_dict())
    (out_p, grads_p), (out_c, grads_c) = _out_and_grads(plain, u0), _out_and_grads(ckpt, u0)
    torch.testing.assert_close(out_c, out_p, rtol=1e-14, atol=1e-14)
    for gc, gp in zip(grads_c, grads_p):
        torch.testing.assert_close(gc, gp, rtol=1e-12, atol=1e-14)


def test_a_long_history_crosses_a_shortcut_whole():
    """A rule reading u_{n-1} and u_{n-2} takes the ResNet step at the shortcut, and the
    step after it reads u_n and u_{n-1} carried into the new shape: checked by hand."""
    from odenets import solvers

    rule = solvers.MultistepCoefficients("test_three_states", 1, alpha=(0.5, 0.25, 0.25), beta=(1.75, 0.0, 0.0))
    with registered({"test_three_states": rule}):
        torch.manual_seed(0)
        widen, P = nn.Linear(4, 8), nn.Linear(4, 8, bias=False)
        fs = [nn.Linear(4, 4), nn.Linear(4, 4), widen, nn.Linear(8, 8)]
        net = ODENet(fs, "test_three_states", shortcuts={2: P}).double()
        u0 = torch.randn(3, 4, dtype=torch.float64)
        got = net(u0)
        with torch.no_grad():
            u1 = u0 + fs[0](u0)                                  # starter: forward Euler (order 1)
            u2 = u1 + fs[1](u1)
            u3 = P(u2) + widen(u2)                               # the ResNet transition
            u4 = 0.5 * u3 + 0.25 * P(u2) + 0.25 * P(u1) + 1.75 * fs[3](u3)
        torch.testing.assert_close(got, u4)


def test_a_module_with_an_optional_second_argument_is_called_with_the_state_alone():
    cell = nn.GRUCell(4, 4)  # forward(input, hx=None): hx is optional, not a time
    net = ODENet(lambda n: _GRUField(cell), "euler", steps=2)
    assert net(torch.randn(2, 4)).shape == (2, 4)


class _GRUField(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.cell = cell

    def forward(self, u, scale: float = 1.0):
        return scale * (self.cell(u) - u)


def test_integrate_hands_on_the_end_point_of_an_adaptive_net():
    f = nn.Linear(3, 3)
    net = ODENet(f, "dopri5", steps=4, dt=0.25, return_trajectory=True)
    u0 = torch.randn(2, 3)
    trajectory = net(u0)
    carry = net.integrate(Carry(u0))
    assert trajectory.shape == (5, 2, 3) and carry.u.shape == (2, 3)
    torch.testing.assert_close(carry.u, trajectory[-1])


def test_a_history_needs_carry_in():
    first = ODENet([nn.Linear(3, 3) for _ in range(2)], "lm")
    second = ODENet([nn.Linear(3, 3) for _ in range(2)], "lm")
    with pytest.raises(ValueError, match="build later stages with carry_in=True"):
        second.integrate(first.integrate(Carry(torch.randn(2, 3))))


def test_an_in_place_activation_never_writes_into_the_state_it_was_handed():
    """The zoo's ReLU works in place on each step's result; a user scheme whose step hands
    back its input unchanged gets a copy activated instead."""
    from odenets import solvers

    class Still(solvers.Scheme):
        name = "test_still"

        def step(self, f, t, dt, u, past, **params):
            return u, solvers.Record(u)

    with registered({"test_still": Still}):
        u0 = torch.randn(3, 4)
        kept = u0.clone()
        out = ODENet(nn.Linear(4, 4), "test_still", steps=2, activation=nn.ReLU(inplace=True))(u0)
        torch.testing.assert_close(u0, kept)
        torch.testing.assert_close(out, kept.clamp(min=0))
