"""The LM-ResNet authors' CIFAR networks (Lu, Zhong, Li & Dong 2018, their MResNet code).

They differ from He et al.'s CIFAR ResNets (the zoo's ``resnetN``) in the network around
the scheme, which sets what the LM step sees at each downsampling block:

- stem: one 3x3 convolution, 3 -> 16 channels, with no batch norm or ReLU after it;
- pre-activation blocks (BN-ReLU-conv twice; the bottleneck thrice), no ReLU after the
  addition;
- the shortcut P of a shape-changing block is BN-ReLU-conv1x1(stride)
  (:class:`zoo.PreActProjection`), also on the bottleneck network's first block
  (16 -> 64 channels, stride 1); P(u_n) is the next block's u_{n-1};
- head: BN-ReLU, global average pooling, a fully connected layer.

That is :func:`zoo.build` with pre-activation blocks and the ``'preact'`` shortcut.
``lm_resnetN`` is this network under the LM step, ``preact_resnetN`` the same network
under forward Euler (the same parameters but the k_n), so the two compare like with like.
``noise='batch_drop'`` is the authors' stochastic depth (:class:`solvers.StochasticDepth`
with ``per_sample=False``).
"""
from __future__ import annotations

from typing import Union

from odenets.solvers import SolverSpec

from .resnet import ResNet, Stage, build

BLOCKS = ("basic", "bottleneck")


def authors_resnet(depth: int, block: str = "basic", num_classes: int = 10, in_chans: int = 3,
                   solver: Union[str, SolverSpec] = "lm", **options) -> ResNet:
    """The authors' CIFAR network of ``depth`` under ``solver`` (any one-function
    fixed-step scheme): ``block='basic'``, depth 6n + 2 on 16/32/64 channels, or
    ``'bottleneck'``, depth 9n + 2 on 64/128/256 channels (inner widths 16/32/64).

    ``options`` are :func:`zoo.build`'s (``dt``, ``checkpoint``, ``channels=True``); the
    scheme's (``noise``, ``survival``, ``k_init``, ``k_bounds``) are ``solver``'s. The
    network is pre-activation by definition."""
    if block not in BLOCKS:
        raise ValueError(f"block must be one of {', '.join(BLOCKS)}, got {block!r}")
    if "preact" in options:
        raise ValueError("the authors' networks are pre-activation by definition; preact is not an option "
                         "(He et al.'s post-activation networks are resnetN)")
    per_block = 3 if block == "bottleneck" else 2  # layers per block
    if not isinstance(depth, int) or depth < 3 * per_block + 2 or (depth - 2) % (3 * per_block):
        raise ValueError(f"the authors' {block} network has depth {3 * per_block}n + 2, got {depth!r}")
    n = (depth - 2) // (3 * per_block)
    if block == "bottleneck":
        stages = [Stage(n, 64 * 2 ** i, 1 if i == 0 else 2, 16 * 2 ** i) for i in range(3)]
    else:
        stages = [Stage(n, 16 * 2 ** i, 1 if i == 0 else 2) for i in range(3)]
    return build(stages, block=block, stem="cifar", stem_channels=16, shortcut_kind="preact",
                 num_classes=num_classes, in_chans=in_chans, solver=solver, preact=True, **options)
