"""The core on a GPU: the same results as on the CPU, under autocast, memory-free
training and torch.compile. Skipped where no CUDA device is present (CI has none; a
session lent a GPU runs them, see the README's Test section)."""
import pytest
import torch
from torch import nn

from odenets import ODENet, zoo

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
@pytest.mark.parametrize("solver", ["revnet", "momentum"])
def test_memory_efficient_with_dropout_matches_plain_backprop_from_the_same_seed(solver):
    """The backward pass replays the CUDA generator's state of each dropout mask, and
    leaves the CPU and CUDA streams where plain backprop leaves them."""
    def dropped(d: int) -> nn.Module:
        return nn.Sequential(nn.Linear(d, 16), nn.Tanh(), nn.Dropout(0.3), nn.Linear(16, d), nn.Dropout(0.3))

    torch.manual_seed(0)
    fns = [(dropped(4), dropped(4)) for _ in range(4)] if solver == "revnet" else [dropped(8) for _ in range(4)]
    x = torch.randn(16, 8, device="cuda", dtype=torch.float64, requires_grad=True)
    runs = []
    for memory_efficient in (False, True):
        net = ODENet(fns, solver, memory_efficient=memory_efficient).cuda().double()
        torch.manual_seed(1)
        out = net(x)
        grads = torch.autograd.grad(out.square().sum(), [x, *net.parameters()])
        runs.append((out, grads, torch.rand(3), torch.rand(3, device="cuda")))
    (out_p, grads_p, *after_p), (out_e, grads_e, *after_e) = runs
    torch.testing.assert_close(out_e, out_p, rtol=1e-8, atol=1e-10)  # the fixed point's rounding
    for a, b in zip(grads_e, grads_p):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    for a, b in zip(after_e, after_p):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class Seen(nn.Module):
    """A block that keeps a copy of every input it is given."""

    def __init__(self, d: int):
        super().__init__()
        self.f, self.inputs = mlp(d), []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return self.f(x)


@cuda
@pytest.mark.parametrize("solver", ["revnet", "momentum"])
@pytest.mark.parametrize("dtype", [None, torch.float16, torch.bfloat16], ids=["float32", "float16", "bfloat16"])
def test_exact_reversal_rebuilds_every_state_bit_for_bit(solver, dtype):
    """The inverse step feeds each function its forward input, bit for bit, at depth 200,
    in float32 and under autocast (docs/exact-reversal.md)."""
    torch.manual_seed(0)
    fns = [(Seen(4), Seen(4)) for _ in range(200)] if solver == "revnet" else [Seen(8) for _ in range(200)]
    net = ODENet(fns, solver, gamma=0.5, memory_efficient=True) if solver == "momentum" else \
        ODENet(fns, solver, memory_efficient=True)
    net.cuda()
    x = torch.randn(16, 8, device="cuda", requires_grad=True)
    with torch.autocast("cuda", dtype=dtype or torch.float16, enabled=dtype is not None):
        out = net(x)
    out.float().square().sum().backward()
    for m in net.modules():
        if isinstance(m, Seen):
            assert len(m.inputs) == 3 and torch.equal(m.inputs[1], m.inputs[0])
    assert torch.isfinite(x.grad).all()


@cuda
@pytest.mark.parametrize("gamma", [0.2, 0.5, 0.9, 0.99])
def test_exact_reversal_gradients_are_float32_round_off_on_the_gpu(gamma):
    """Momentum, MLP blocks 32-64-32, depth 100: memory_efficient=True in float32 on the GPU
    within 1e-5 of float64 plain backprop on the CPU."""
    torch.manual_seed(0)
    fs = [nn.Sequential(nn.Linear(32, 64), nn.Tanh(), nn.Linear(64, 32)) for _ in range(100)]
    x = torch.randn(8, 32)
    results = []
    for device, dtype, efficient in (("cpu", torch.float64, False), ("cuda", torch.float32, True)):
        net = ODENet(fs, "momentum", gamma=gamma, memory_efficient=efficient).to(device, dtype)
        u = x.to(device, dtype).requires_grad_(True)
        out = net(u)
        grads = torch.autograd.grad(out.square().sum(), [u, net.fns[0][0].weight])
        results.append([t.detach().cpu().double() for t in (out, *grads)])
    for truth, ours in zip(*results):
        assert float((ours - truth).norm() / truth.norm()) <= 1e-5


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


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory):
    """A CIFAR-10-shaped image folder (32x32 RGB PNGs, 256 training and 64 test images)."""
    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("cifar-like")
    rng = np.random.default_rng(0)
    for i in range(320):
        folder = root / ("train" if i < 256 else "test") / f"class{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return root


@cuda
@pytest.mark.parametrize("amp", [False, True])
def test_training_steps_never_wait_for_the_gpu(cifar_like, tmp_path, monkeypatch, amp):
    """From the second step to the last of an epoch, nothing synchronises the host with the
    GPU but the late read of the step before's statistics (allowed below)."""
    from odenets.app.commands.train import fit
    from odenets.app.run import late_read, precision
    from odenets.app.settings.config import Config

    if amp and precision.dtype(torch.device("cuda")) != torch.bfloat16:
        pytest.skip("float16 autocast needs the GradScaler, which reads a flag every step")
    values = late_read.Reading.values

    def allowed(reading):
        mode = torch.cuda.get_sync_debug_mode()
        torch.cuda.set_sync_debug_mode(0)
        try:
            return values(reading)
        finally:
            torch.cuda.set_sync_debug_mode(mode)

    monkeypatch.setattr(late_read.Reading, "values", allowed)

    def hook(model, epoch, step):  # 8 steps an epoch
        torch.cuda.set_sync_debug_mode("error" if 2 <= step % 8 < 7 else 0)

    try:
        result = fit(Config(model="resnet8", data="cifar10", data_dir=str(cifar_like), epochs=2, batch_size=32,
                            amp=amp, device="cuda", out=str(tmp_path / "run"), quiet=True), on_step=hook)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert len(result["history"]) == 2 and all(r["train_loss"] > 0 for r in result["history"])


@cuda
@pytest.mark.slow
def test_cuda_graphs_channels_last_and_amp_train_to_the_end(cifar_like, tmp_path):
    from odenets.app.commands.train import fit
    from odenets.app.settings.config import Config

    result = fit(Config(model="lm_resnet20", data="cifar10", data_dir=str(cifar_like), epochs=2, batch_size=32,
                        amp=True, compile=True, compile_mode="reduce-overhead", channels_last=True, device="cuda",
                        out=str(tmp_path / "run"), quiet=True))
    assert [r["epoch"] for r in result["history"]] == [1, 2]
    assert all(0 < r["train_loss"] < 10 and 0 <= r["test_acc"] <= 1 for r in result["history"])
