"""Files written by odenets 0.1, before steps were modules, still load and compute what
they computed then (tests/data/README.md says how each was made)."""
from pathlib import Path

import torch
from torch import nn

from odenets import ODENet

DATA = Path(__file__).with_name("data")


class Block(nn.Module):
    """The fixture's block: conv-BN-tanh (0.1 kept its shortcut as a child, today the step does)."""

    def __init__(self, i: int, o: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(i, o, 3, stride=stride, padding=1)
        self.bn = nn.BatchNorm2d(o)

    def forward(self, u):
        return torch.tanh(self.bn(self.conv(u)))


def test_an_odenet_state_dict_of_version_1_loads_into_the_new_layout():
    saved = torch.load(DATA / "v1-odenet-lm-shortcut.pt", weights_only=True)
    assert "coefs.1.k" in saved["state"] and "fns.2.shortcut.0.weight" in saved["state"]
    P = nn.Sequential(nn.Conv2d(4, 6, 1, stride=2, bias=False), nn.BatchNorm2d(6))
    net = ODENet([Block(4, 4), Block(4, 4), Block(4, 6, 2), Block(6, 6), Block(6, 6)], "lm", shortcuts={2: P})
    net.load_state_dict(saved["state"])  # strict: every key maps
    assert torch.equal(net.layers[1].coefs["k"], saved["state"]["coefs.1.k"])
    assert torch.equal(P[0].weight, saved["state"]["fns.2.shortcut.0.weight"])
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(saved["x"]), saved["y"], rtol=1e-6, atol=1e-6)


def test_a_module_that_still_holds_its_shortcut_keeps_its_keys():
    net = ODENet([nn.Linear(4, 4), nn.Linear(4, 2)], "euler", shortcuts={1: nn.Linear(4, 2)})
    net.fns[1].shortcut = nn.Linear(4, 2)  # a child of the block itself, also in the state dict
    state = net.state_dict()
    fresh = ODENet([nn.Linear(4, 4), nn.Linear(4, 2)], "euler", shortcuts={1: nn.Linear(4, 2)})
    fresh.fns[1].shortcut = nn.Linear(4, 2)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.fns[1].shortcut.weight, net.fns[1].shortcut.weight)
    assert torch.equal(fresh.layers[1].shortcut.weight, net.layers[1].shortcut.weight)
