"""torch.compile of an ODENet gives the eager result, forward and gradient, as one graph
(fullgraph=True: a graph break per step would defeat compiling the unrolled network).

The dynamo + AOT-autograd path is checked for several schemes with the 'aot_eager'
backend (no code generation, fast); the default inductor backend, which compiles C++ on
CPU, once for euler and lm.
"""
import pytest
import torch
from torch import nn

from odenets import ODENet, zoo

F64 = torch.float64


def _net(solver: str) -> ODENet:
    """Three steps over Linear + Tanh blocks; pairs (F, G) for the pair schemes."""
    torch.manual_seed(0)
    d = 2 if solver == "revnet" else 4  # RevNet's blocks act on half the state

    def block():
        return nn.Sequential(nn.Linear(d, d), nn.Tanh()).double()

    f = [(block(), block()) if solver in ("revnet", "fractal") else block() for _ in range(3)]
    return ODENet(f, solver, dt=0.5).double()


def _run(net, module, u0):
    u = u0.clone().requires_grad_(True)
    out = module(u)
    out.pow(2).sum().backward()
    grads = [u.grad] + [p.grad.clone() for p in net.parameters()]
    net.zero_grad(set_to_none=True)
    return out.detach(), grads


def _assert_compiled_equals_eager(solver: str, backend: str) -> None:
    net = _net(solver)
    u0 = torch.randn(5, 4, dtype=F64)
    want, want_grads = _run(net, net, u0)
    got, got_grads = _run(net, torch.compile(net, backend=backend, fullgraph=True), u0)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert len(got_grads) == len(want_grads)
    for g, w in zip(got_grads, want_grads):
        torch.testing.assert_close(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver", ["euler", "lm", "rk4", "ab3", "polynet", "revnet", "fractal"])
def test_compiled_graph_equals_eager(solver):
    torch._dynamo.reset()
    _assert_compiled_equals_eager(solver, "aot_eager")


@pytest.mark.slow
def test_inductor_equals_eager():
    torch._dynamo.reset()
    for solver in ("euler", "lm"):
        _assert_compiled_equals_eager(solver, "inductor")


@pytest.mark.parametrize("build", [lambda: zoo.create("lm_resnet8"), lambda: zoo.create("resnet8", solver="revnet"),
                                   lambda: zoo.create("resnet14", solver="lm", noise="stochastic_depth")],
                         ids=["authors-lm", "revnet-pairs", "lm-sd-eval"])
def test_a_zoo_model_with_shape_changing_steps_compiles_as_one_graph(build):
    """Downsampling steps (shortcuts, the LM history carried across them, a pair's
    halves) and eval-mode stochastic depth trace without a graph break."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    model = build().double().eval()
    x = torch.randn(2, 3, 16, 16, dtype=F64)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, backend="aot_eager", fullgraph=True)(x), model(x),
                                   rtol=1e-12, atol=1e-12)
