"""The zoo's lm_resnetN against an independent float64 reference of the LM-ResNet
authors' CIFAR network, written here from the published description (their MResNet):

- stem: conv3x3 3 -> 16, nothing after it;
- pre-activation blocks: basic BN-ReLU-conv3x3(stride)-BN-ReLU-conv3x3, bottleneck
  BN-ReLU-conv1x1-BN-ReLU-conv3x3(stride)-BN-ReLU-conv1x1 (x4 channels), no ReLU after
  the addition;
- shortcut P = BN-ReLU-conv1x1(stride) where the shape changes, and on the bottleneck
  network's first block (16 -> 64);
- the first block and each stage's first block: u_{n+1} = P(u_n) + f_n(u_n), and P(u_n)
  is the next block's u_{n-1}; the others: u_{n+1} = a_n u_n + (1 - a_n) u_{n-1} + f_n(u_n)
  with the authors' trained weight a_n on u_n, which is 1 - k_n;
- head: BN-ReLU, global average pooling, fully connected;
- stochastic depth: block i dropped with d_i = i / (L - 1) (1 - p_L), one draw per block
  per mini-batch, a kept residual divided by 1 - d_i in training; eval uses the block as is.

Every weight is copied onto the zoo model; outputs in train and eval mode, batch-norm
running statistics and every gradient (d/dk_n = -d/da_n) agree to float64 round-off.
"""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from odenets import solvers, zoo

F64 = torch.float64
PARAMS = {20: 272_384, 56: 855_698, 110: 1_730_669, 164: 1_703_725}  # used by the forward pass, k_n included


class Layer(nn.Module):
    """BN-ReLU-conv, the unit every part of the reference is made of."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.bn = nn.BatchNorm2d(cin)
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)

    def forward(self, x):
        return self.conv(F.relu(self.bn(x)))


class Reference(nn.Module):
    def __init__(self, depth: int, bottleneck: bool, death_rates=None):
        super().__init__()
        n = (depth - 2) // (9 if bottleneck else 6)
        self.stem = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.blocks, self.shortcuts, self.a = nn.ModuleList(), nn.ModuleDict(), nn.ParameterDict()
        cin = 16
        for stage, planes in enumerate((16, 32, 64)):
            cout = planes * 4 if bottleneck else planes
            for j in range(n):
                i, stride = len(self.blocks), 2 if stage > 0 and j == 0 else 1
                if bottleneck:
                    layers = [Layer(cin, planes, 1), Layer(planes, planes, 3, stride), Layer(planes, cout, 1)]
                else:
                    layers = [Layer(cin, cout, 3, stride), Layer(cout, cout, 3)]
                self.blocks.append(nn.Sequential(*layers))
                if cin != cout or stride != 1:
                    self.shortcuts[str(i)] = Layer(cin, cout, 1, stride)
                elif i > 0:
                    self.a[str(i)] = nn.Parameter(torch.empty(()).uniform_(0.5, 1.5))
                cin = cout
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, 10)
        self.death_rates = death_rates or [0.0] * len(self.blocks)

    def residual(self, i, x):
        d = self.death_rates[i]
        if self.training and float(torch.rand(())) < d:
            return 0.0
        out = self.blocks[i](x)
        return out / (1 - d) if self.training and d else out

    def forward(self, x):
        u, prev = self.stem(x), None
        for i in range(len(self.blocks)):
            key = str(i)
            if key in self.a:
                new = self.a[key] * u + (1 - self.a[key]) * prev + self.residual(i, u)
                prev = u
            else:
                prev = self.shortcuts[key](u) if key in self.shortcuts else u
                new = prev + self.residual(i, u)
            u = new
        return self.fc(F.relu(self.bn(u)).mean((2, 3)))


def pairs(ref: Reference, model) -> list:
    """(reference module, zoo module) for every part holding weights, the k_n apart."""
    out = [(ref.stem, model.stem.conv), (ref.bn, model.head.bn), (ref.fc, model.head.fc)]
    zoo_blocks = [(fn, step) for stage in model.stages for fn, step in zip(stage.fns, stage.layers)]
    assert len(zoo_blocks) == len(ref.blocks)
    for i, (mine, (theirs, step)) in enumerate(zip(ref.blocks, zoo_blocks)):
        names = [("bn1", "conv1"), ("bn2", "conv2"), ("bn3", "conv3")][:len(mine)]
        for layer, (bn, conv) in zip(mine, names):
            out += [(layer.bn, getattr(theirs, bn)), (layer.conv, getattr(theirs, conv))]
        if str(i) in ref.shortcuts:
            out += [(ref.shortcuts[str(i)].bn, step.shortcut.bn), (ref.shortcuts[str(i)].conv, step.shortcut.conv)]
    return out


def ks(model) -> list:
    """The zoo model's k_n in block order, None for a block without one."""
    return [c["k"] if "k" in c else None for stage in model.stages for c in stage.coefs]


def mapped(depth: int, bottleneck: bool, **options):
    torch.manual_seed(depth)
    ref = Reference(depth, bottleneck, options.pop("death_rates", None)).to(F64)
    for m in ref.modules():
        if isinstance(m, nn.BatchNorm2d):  # affine weights and statistics away from their defaults
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.3, 0.3), m.running_var.uniform_(0.5, 2.0)
    model = zoo.create(f"lm_resnet{depth}", **options).to(F64)
    covered = 0
    for mine, theirs in pairs(ref, model):
        theirs.load_state_dict(mine.state_dict())
        covered += sum(p.numel() for p in theirs.parameters())
    with torch.no_grad():
        for i, k in enumerate(ks(model)):
            assert (k is None) == (str(i) not in ref.a), f"block {i}: a k_n where the authors have none, or none"
            if k is not None:
                k.copy_(1 - ref.a[str(i)])
                covered += 1
    assert covered == sum(p.numel() for p in model.parameters()) == PARAMS[depth]  # every weight mapped
    return ref, model


def compare(ref, model, train: bool, seed: int = 0):
    x = torch.randn(4, 3, 32, 32, dtype=F64, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 3, 7, 9])
    outs = []
    for net in (ref, model):
        net.train(train)
        torch.manual_seed(seed)
        out = net(x)
        F.cross_entropy(out, y).backward()
        outs.append(out)
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-12)
    for mine, theirs in pairs(ref, model):
        for (name, a), b in zip(mine.named_parameters(), theirs.parameters()):
            torch.testing.assert_close(b.grad, a.grad, rtol=1e-9, atol=1e-12, msg=f"gradient of {name}")
        for a, b in zip(mine.buffers(), theirs.buffers()):
            torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14)
    for i, k in enumerate(ks(model)):
        if k is not None:
            torch.testing.assert_close(k.grad, -ref.a[str(i)].grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("depth, bottleneck", [(20, False), pytest.param(164, True, marks=pytest.mark.slow)])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_lm_resnet_is_the_authors_network(depth, bottleneck, train):
    ref, model = mapped(depth, bottleneck)
    compare(ref, model, train)


@pytest.mark.slow
@pytest.mark.parametrize("depth", [56, 110])
def test_parameter_counts_of_the_deeper_lm_resnets(depth):
    assert sum(p.numel() for p in zoo.create(f"lm_resnet{depth}").parameters()) == PARAMS[depth]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_authors_stochastic_depth_drops_whole_blocks_and_scales_the_kept_ones(seed):
    rates = [1 - p for p in solvers.survival_probabilities(9, 0.5, authors=True)]
    assert rates[0] == 0 and rates[-1] == pytest.approx(0.5)
    ref, model = mapped(20, False, noise="batch_drop", survival=0.5, death_rates=rates)
    compare(ref, model, train=True, seed=seed)
    compare(ref, model, train=False, seed=seed)


def test_preact_resnet_is_the_same_network_under_euler():
    lm, euler = zoo.create("lm_resnet20"), zoo.create("preact_resnet20")
    lm_keys = {k for k in lm.state_dict() if ".coefs." not in k}
    assert lm_keys == set(euler.state_dict())
    euler.load_state_dict({k: v for k, v in lm.state_dict().items() if k in lm_keys})
    with torch.no_grad():
        for k in ks(lm):
            if k is not None:
                k.zero_()  # k = 0: the LM step is the Euler step
        x = torch.randn(2, 3, 32, 32)
        torch.testing.assert_close(lm.eval()(x), euler.eval()(x), rtol=0, atol=0)
