"""Memory-efficient backpropagation through steps that draw random numbers (dropout in
training mode): the backward pass replays each function evaluation's random state, so the
outputs, the gradients and the random stream afterwards are plain backpropagation's from
the same seed."""
from typing import Callable

import pytest
import torch
from torch import Tensor, nn

from odenets import ODENet

F64 = torch.float64
# memory_efficient=True runs the steps in fixed point (states to 2^-48 in float64, gamma to 2^-31):
# without the draws replayed, outputs would differ at 1e-1, not at this rounding
FIXED_POINT = dict(rtol=1e-8, atol=1e-10)


def dropped(d: int = 4) -> nn.Module:
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, d), nn.Dropout(0.3)).double()


class Jitter(nn.Module):
    """Randomness that is no dropout layer: Gaussian noise added to the input."""

    def __init__(self, d: int = 4):
        super().__init__()
        self.f = nn.Linear(d, d).double()

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.f(x + 0.1 * torch.randn_like(x)))


torch.manual_seed(0)
REVNET = [(dropped(), dropped()) for _ in range(4)]
G_ONLY = [(nn.Linear(4, 4).double(), dropped()) for _ in range(4)]
SHARED = (dropped(), dropped())
JITTER = [(Jitter(), Jitter()) for _ in range(4)]
MOMENTUM = [dropped(8) for _ in range(6)]

NETS: dict[str, Callable[[bool], ODENet]] = {
    "revnet": lambda me: ODENet(REVNET, "revnet", memory_efficient=me),
    "revnet, dropout in G only": lambda me: ODENet(G_ONLY, "revnet", memory_efficient=me),
    "revnet, shared pair": lambda me: ODENet(SHARED, "revnet", steps=4, memory_efficient=me),
    "revnet, noise inside f": lambda me: ODENet(JITTER, "revnet", memory_efficient=me),
    "momentum": lambda me: ODENet(MOMENTUM, "momentum", gamma=0.8, memory_efficient=me),
    "momentum, trained gamma": lambda me: ODENet(MOMENTUM, "momentum", gamma=0.8, train_gamma=True,
                                                 memory_efficient=me),
}


def run(net: ODENet, x: Tensor, seed: int) -> tuple[Tensor, list[Tensor], Tensor]:
    """The output from ``seed``, the gradients of its squares' sum, and the next random
    draws after the backward pass (with a draw between the forward and backward passes)."""
    torch.manual_seed(seed)
    out = net(x)
    torch.rand(5)  # the caller's own draws do not reach the replay
    grads = torch.autograd.grad(out.square().sum(), [x, *net.parameters()])
    return out, list(grads), torch.rand(3)


@pytest.mark.parametrize("name", NETS)
def test_training_with_randomness_equals_plain_backprop_from_the_same_seed(name):
    plain, efficient = NETS[name](False), NETS[name](True)
    efficient.load_state_dict(plain.state_dict())
    x = torch.randn(6, 8, dtype=F64, requires_grad=True)
    out_p, grads_p, after_p = run(plain, x, seed=1)
    out_e, grads_e, after_e = run(efficient, x, seed=1)
    assert not torch.equal(out_p, run(plain, x, seed=2)[0])  # the draws matter
    torch.testing.assert_close(out_e, out_p, **FIXED_POINT)
    assert len(grads_e) == len(grads_p)
    for a, b in zip(grads_e, grads_p):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(after_e, after_p, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["revnet", "momentum"])
def test_eval_mode_draws_nothing_and_equals_plain_backprop(name):
    plain, efficient = NETS[name](False).eval(), NETS[name](True).eval()
    x = torch.randn(6, 8, dtype=F64, requires_grad=True)
    out_p, grads_p, after_p = run(plain, x, seed=3)
    out_e, grads_e, after_e = run(efficient, x, seed=3)
    torch.manual_seed(3)
    torch.rand(5)
    torch.testing.assert_close(after_p, torch.rand(3), rtol=0, atol=0)  # dropout drew nothing
    torch.testing.assert_close(out_e, out_p, **FIXED_POINT)
    for a, b in zip(grads_e, grads_p):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(after_e, after_p, rtol=0, atol=0)


def test_without_grad_the_steps_run_plainly_and_record_nothing(monkeypatch):
    from odenets import reversible

    monkeypatch.setattr(reversible._Draws, "record", lambda self, i: pytest.fail("recorded under no_grad"))
    torch.manual_seed(0)
    fns = [nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.3)) for _ in range(3)]
    plain, efficient = ODENet(fns, "momentum"), ODENet(fns, "momentum", memory_efficient=True)
    x = torch.randn(5, 4)
    with torch.no_grad():
        torch.manual_seed(1)
        want = plain(x)
        torch.manual_seed(1)
        got = efficient(x)
    assert torch.equal(got, want)
