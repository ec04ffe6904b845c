"""Cost and accuracy of ``odenets.analysis.step_spectra``.

Cost: the process's CPU time of step_spectra on lm_resnet20 for a batch of CIFAR-sized
inputs (every step by Arnoldi: 16 384, 8 192 and 4 096 numbers per image), for each
Krylov dimension. Accuracy: on a model whose first stage is small enough to form J
(digits-sized inputs, 1 024 numbers per image), Arnoldi's radius, max Re z, top-8 moduli
and inside-fraction against the exact eigenvalues, for each Krylov dimension. A trained
digits checkpoint (``--checkpoint``, from ``odenets train --data digits``) replaces the
untrained model and random inputs of the accuracy part by its weights and test images.

    python benchmarks/bench_spectra.py
    python benchmarks/bench_spectra.py --checkpoint runs/digits-lm_resnet20
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from odenets import zoo
from odenets.analysis import step_spectra


def cost(images: int, krylovs: list[int]) -> None:
    torch.manual_seed(0)
    model = zoo.create("lm_resnet20", num_classes=10).eval()
    x = torch.randn(images, 3, 32, 32)
    step_spectra(model, x[:2], top=8, krylov=krylovs[0])  # warm-up
    for m in krylovs:
        start = time.process_time()
        records = step_spectra(model, x, top=8, krylov=m)
        seconds = time.process_time() - start
        print(f"lm_resnet20, {images} images of 3x32x32, krylov={m}: {seconds:.1f} s CPU time, "
              f"{len(records)} steps ({', '.join(sorted({r.method for r in records}))})")


def accuracy(checkpoint: str, images: int, krylovs: list[int]) -> None:
    if checkpoint:
        from odenets.app.data import datasets as data
        from odenets.app.run.models import from_checkpoint

        model, cfg, _ = from_checkpoint(checkpoint)
        test = data.load(cfg.data, cfg.data_dir).test
        x = torch.stack([test[i * len(test) // images][0] for i in range(images)])
        what = f"{checkpoint} ({cfg.model}) on {images} test images"
    else:
        torch.manual_seed(0)
        model = zoo.create("lm_resnet20", num_classes=10, in_chans=1).eval()
        x = torch.randn(images, 1, 8, 8)
        what = f"lm_resnet20 at initialisation on {images} random 1x8x8 inputs"
    exact = [r for r in step_spectra(model, x, top=8, exact_limit=1024) if r.method == "exact"]
    size = {(r.stage, r.step) for r in exact}
    print(f"Arnoldi against the exact eigenvalues, {what}: the {len(exact)} steps of 1 024 or fewer numbers")
    print("krylov  radius (max rel err)  max Re (max abs err)  top-8 moduli (max rel err)  inside (max abs diff)")
    for m in krylovs:
        arnoldi = [r for r in step_spectra(model, x, top=8, krylov=m, exact_limit=0) if (r.stage, r.step) in size]
        radius = max(abs(a.radius - e.radius) / e.radius for a, e in zip(arnoldi, exact))
        real = max(abs(a.max_real - e.max_real) for a, e in zip(arnoldi, exact))
        moduli = max(float(np.abs(np.sort(a.eigenvalues.abs().numpy(), 1) - np.sort(e.eigenvalues.abs().numpy(), 1)).max()
                           / e.eigenvalues.abs().max()) for a, e in zip(arnoldi, exact))
        inside = max(abs(a.inside_fraction - e.inside_fraction) for a, e in zip(arnoldi, exact))
        print(f"{m:6d}  {radius:20.1e}  {real:20.1e}  {moduli:27.1e}  {inside:21.3f}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=32, help="images for the cost (default: 32)")
    p.add_argument("--accuracy-images", type=int, default=8, help="images for the accuracy (default: 8)")
    p.add_argument("--krylov", type=int, nargs="+", default=[40, 80], help="Krylov dimensions (default: 40 80)")
    p.add_argument("--checkpoint", default="", help="a digits checkpoint for the accuracy part")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    accuracy(args.checkpoint, args.accuracy_images, args.krylov)
    cost(args.images, args.krylov)


if __name__ == "__main__":
    main()
