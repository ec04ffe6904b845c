"""torchrun with 2 CPU processes (gloo): data-parallel training on the digits ends with
the same weights in both processes, and only rank 0 writes files; a small-image folder is
decoded into the tensor cache once, not once per process; a stop asked of one process
stops both at the same step, and the run resumes."""
import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from odenets.app.run import checkpoint

# Each rank trains through the library and writes a digest of the weights it ends with.
SCRIPT = textwrap.dedent("""
    import hashlib, json, os, sys
    from pathlib import Path
    from odenets.app.settings.config import Config
    from odenets.app.commands.train import fit

    out, rank = Path(sys.argv[1]), int(os.environ["RANK"])
    final = {}
    fit(Config(**json.loads(sys.argv[2]), epochs=2, batch_size=64, lr=0.05, seed=3, out=str(out), quiet=True),
        on_step=lambda model, epoch, step: final.update(model=model))
    state = final["model"].state_dict()
    digest = hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()
    (out.parent / f"rank{rank}.sha256").write_text(digest)
""")


def digest(state):
    import hashlib

    return hashlib.sha256(b"".join(state[k].numpy().tobytes() for k in sorted(state))).hexdigest()


@pytest.mark.slow
@pytest.mark.parametrize("model", [dict(model="resnet14", solver="lm"),
                                   # each process drops its own blocks: parameters unused on one rank
                                   dict(model="lm_resnet14", options={"noise": "batch_drop", "survival": 0.5})],
                         ids=["resnet14-lm", "authors-stochastic-depth"])
def test_two_processes_end_with_the_same_weights(tmp_path, model):
    (tmp_path / "ddp.py").write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(tmp_path / "ddp.py"), str(tmp_path / "run"), json.dumps(model)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = ((tmp_path / f"rank{r}.sha256").read_text() for r in (0, 1))
    assert rank0 == rank1
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    assert digest(state["model"]) == rank0  # rank 0's checkpoint holds the weights both ended with
    assert state["world_size"] == 2 and len(state["rng"]) == 2
    # each process took half of every global batch of 64: ceil(ceil(1347 / 2) / 32) = 22 steps an epoch
    assert state["step"] == 2 * 22
    result = json.loads((tmp_path / "run" / "result.json").read_text())
    assert result["test_acc"] > 0.3  # chance is 0.1
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "checkpoint.pt", "config.json", "metrics.csv", "metrics.jsonl", "result.json"]
    assert torch.isfinite(torch.tensor([r["train_loss"] for r in result["history"]])).all()


STOPPING = textwrap.dedent("""
    import json, os, signal, sys
    from pathlib import Path
    from odenets.app.settings.config import Config
    from odenets.app.errors import Interrupted
    from odenets.app.commands.train import fit

    out, data_dir, rank = Path(sys.argv[1]), sys.argv[2], int(os.environ["RANK"])
    cfg = Config(model="resnet8", data="cifar10", data_dir=data_dir, epochs=2, batch_size=32, seed=1, out=str(out),
                 quiet=True)
    try:  # rank 0 alone is asked to stop, after its first step
        fit(cfg, on_step=lambda model, epoch, step: rank == 0 and step == 1 and os.kill(os.getpid(), signal.SIGINT))
    except Interrupted as e:
        (out.parent / f"stopped{rank}.txt").write_text(str(e))
""")


@pytest.mark.slow
def test_two_processes_decode_the_cache_once_and_stop_together(tmp_path):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(160):  # 128 training images: 4 global steps of 32 an epoch
        folder = tmp_path / "data" / ("train" if i < 128 else "test") / f"c{i % 10}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    (tmp_path / "stopping.py").write_text(STOPPING)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ODENETS_CACHE": str(tmp_path / "cache")}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(tmp_path / "stopping.py"), str(tmp_path / "run"), str(tmp_path / "data")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stderr.count("odenets: decoding") == 2, proc.stderr[-3000:]  # the train and test sets, once each
    stopped = [(tmp_path / f"stopped{r}.txt").read_text() for r in (0, 1)]
    assert all("part-way through epoch 1/2 (step 3)" in text for text in stopped), stopped
    state = checkpoint.load(tmp_path / "run" / "checkpoint.pt")
    # the request rides with step 2's statistics, which every process reads after step 3 (one step late)
    assert (state["epoch"], state["batch"], state["step"]) == (0, 3, 3)
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              "-m", "odenets", "train", "--resume", str(tmp_path / "run"), "--quiet"],
                             capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert checkpoint.load(tmp_path / "run" / "checkpoint.pt")["step"] == 2 * 4
