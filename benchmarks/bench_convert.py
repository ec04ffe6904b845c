"""Cost of conversion: a converted network against the model it came from, side by side.

    python benchmarks/bench_convert.py [--repeats 15] [--size 64]

Forward + backward of torchvision's resnet18 and a small timm ViT (depth 4), each
against odenets.convert(model, 'euler') and odenets.convert(model, 'lm'); one thread,
the process's CPU time, median of interleaved runs (benchmarks/bench_zoo.py's timer).
Prints each converted model's time over the original's.
"""
from __future__ import annotations

import argparse

import torch
import torchvision
from bench_zoo import interleaved, train_step

import odenets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    import timm

    models = {"resnet18": torchvision.models.resnet18(num_classes=10),
              "vit (depth 4)": timm.create_model("vit_tiny_patch16_224", depth=4, img_size=args.size,
                                                 patch_size=8, num_classes=10)}
    x = torch.randn(8, 3, args.size, args.size)
    for name, model in models.items():
        steps = {"original": train_step(model.train(), x)}
        for solver in ("euler", "lm"):
            steps[solver] = train_step(odenets.convert(model, solver).train(), x)
        seconds = interleaved(steps, args.repeats, warmup=2)
        ratios = ", ".join(f"{s} {seconds[s] / seconds['original']:.3f}" for s in ("euler", "lm"))
        print(f"{name}: original {1000 * seconds['original']:.1f} ms per step; converted / original: {ratios}")


if __name__ == "__main__":
    main()
