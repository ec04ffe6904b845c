"""The core on a GPU: the same results as on the CPU, under autocast, memory-free
training and torch.compile. Skipped where no CUDA device is present (CI has none; a
session lent a GPU runs them, see the README's Test section)."""
import pytest
import torch
from torch import nn

import zoo
from odenets import ODENet

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def mlp(d: int = 8) -> nn.Module:
    return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Linear(16, d))


@cuda
@pytest.mark.parametrize("solver, options", [("lm", {}), ("rk4", {}), ("momentum", {"gamma": 0.8}),
                                             ("lm", {"noise": "stochastic_depth", "survival": 0.7})])
def test_gpu_equals_cpu_in_float64(solver, options):
    torch.manual_seed(0)
    net = ODENet([mlp() for _ in range(6)], solver, **options).double().eval()
    x = torch.randn(4, 8, dtype=torch.float64)
    want = net(x)
    got = net.cuda()(x.cuda())
    torch.testing.assert_close(got.cpu(), want, rtol=1e-12, atol=1e-12)


@cuda
@pytest.mark.parametrize("solver", ["revnet", "momentum"])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_memory_efficient_under_autocast_matches_plain_backprop(solver, dtype):
    torch.manual_seed(0)
    fns = [(mlp(4), mlp(4)) for _ in range(6)] if solver == "revnet" else [mlp() for _ in range(6)]
    plain = ODENet(fns, solver).cuda()
    efficient = ODENet(fns, solver, memory_efficient=True).cuda()
    x = torch.randn(16, 8, device="cuda", requires_grad=True)
    grads = []
    for net in (plain, efficient):
        with torch.autocast("cuda", dtype=dtype):
            out = net(x)
        grads.append(torch.autograd.grad(out.float().square().sum(), [x, *plain.parameters()]))
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=5e-2, atol=5e-2)


@cuda
def test_the_authors_stochastic_depth_trains_with_amp():
    torch.manual_seed(0)
    model = zoo.create("lm_resnet56_sd").cuda()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    scaler = torch.amp.GradScaler("cuda")
    for _ in range(3):
        with torch.autocast("cuda", dtype=torch.float16):
            loss = nn.functional.cross_entropy(model(torch.randn(8, 3, 32, 32, device="cuda")),
                                               torch.randint(0, 10, (8,), device="cuda"))
        opt.zero_grad()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    assert torch.isfinite(loss)


@cuda
@pytest.mark.slow
def test_compiled_lm_resnet_equals_eager_on_the_gpu():
    torch.manual_seed(0)
    model = zoo.create("lm_resnet20").cuda().double().eval()  # float64: the kernels' own rounding apart
    x = torch.randn(8, 3, 32, 32, device="cuda", dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(torch.compile(model, fullgraph=True)(x), model(x), rtol=1e-9, atol=1e-9)
