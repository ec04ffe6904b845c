"""Butcher's rooted trees: the order conditions of Runge–Kutta schemes, to any order.

A rooted tree is written by the list of the subtrees hanging from its root,
t = [t_1, ..., t_m]; the one-node tree has none. Here a tree is the tuple of its
children, sorted, so that each tree has one form: ``()`` is the one-node tree and
``((), ((),))`` is [*, [*]]. With |t| the number of nodes, a scheme (A, b) has order p
if and only if, for every tree with |t| <= p (Hairer, Nørsett & Wanner, *Solving
Ordinary Differential Equations I*, §II.2, Theorem 2.13),

    sum_i b_i Phi_i(t) = 1 / gamma(t),

with the elementary weights Phi_i([t_1, ..., t_m]) = prod_k sum_j a_ij Phi_j(t_k)
(1 for the one-node tree) and the density gamma(t) = |t| prod_k gamma(t_k).
"""
from __future__ import annotations

from functools import lru_cache
from math import prod
from typing import Iterator, Sequence

Tree = tuple  # tuple[Tree, ...]: the sorted subtrees of the root


@lru_cache(maxsize=None)
def trees(n: int) -> tuple[Tree, ...]:
    """Every rooted tree with ``n`` nodes, once each: those of n - 1 nodes with a leaf grafted
    anywhere. Their numbers, n = 1, 2, 3, ..., are 1, 1, 2, 4, 9, 20, 48, 115 (OEIS A000081)."""
    if n < 1:
        raise ValueError(f"a rooted tree has at least 1 node, got {n}")
    if n == 1:
        return ((),)
    return tuple(sorted({grown for smaller in trees(n - 1) for grown in _grafts(smaller)}))


def _grafts(t: Tree) -> Iterator[Tree]:
    """The trees made from ``t`` by adding one leaf, to its root or inside one of its subtrees."""
    yield tuple(sorted(t + ((),)))
    for k, child in enumerate(t):
        for grown in _grafts(child):
            yield tuple(sorted(t[:k] + (grown,) + t[k + 1:]))


def size(t: Tree) -> int:
    """|t|, the number of nodes."""
    return 1 + sum(map(size, t))


def density(t: Tree) -> int:
    """gamma(t) = |t| prod_k gamma(t_k); 1 for the one-node tree."""
    return size(t) * prod(map(density, t))


def elementary_weights(t: Tree, a: Sequence[Sequence]) -> list:
    """Phi_i(t) for each stage i of an explicit scheme, whose row i of A is ``a[i]`` (i entries):
    Phi_i(t) = prod_k sum_{j<i} a_ij Phi_j(t_k). Exact when the entries are Fractions."""
    phi = [1] * len(a)
    for child in t:
        inner = elementary_weights(child, a)
        phi = [p * sum(aij * q for aij, q in zip(row, inner)) for p, row in zip(phi, a)]
    return phi


def bracket(t: Tree) -> str:
    """Bracket notation: ``*`` for the one-node tree, ``[t_1,...,t_m]`` for the others."""
    return "[" + ",".join(map(bracket, t)) + "]" if t else "*"
