"""Separable coupling functions (TVB's pre -> weighted sum -> post decomposition).

A coupling kind maps a node's efferent signal ``e`` to ``n_pre`` channels with ``pre(e)``;
the connectome sums each channel over afferent nodes (with delays if any):
``S_c[i] = sum_j w_ij * pre_c(e_j(t - d_ij))``; ``post(G, rowsum_i, e_i, S...)`` turns the
sums into the input of node i. Because ``pre`` depends on the source node only, the sums
are plain (delayed) matrix products, also for the sine coupling of Kuramoto oscillators:
``sum_j w_ij sin(e_j - e_i) = cos(e_i) sum_j w_ij sin(e_j) - sin(e_i) sum_j w_ij cos(e_j)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

__all__ = ["CouplingKind", "COUPLINGS"]


@dataclass(frozen=True)
class CouplingKind:
    """A coupling: ``pre(e) -> tuple`` of ``n_pre`` channels and ``post(G, rowsum, e_i, *S)``."""

    name: str
    n_pre: int
    pre: Callable
    post: Callable
    doc: str


def _linear_pre(e):
    return (e,)


def _linear_post(G, rowsum, e_i, s):
    return G * s


def _difference_post(G, rowsum, e_i, s):
    return G * (s - rowsum * e_i)


def _sine_pre(e):
    return (math.sin(e), math.cos(e))


def _sine_post(G, rowsum, e_i, s_sin, s_cos):
    return G * (math.cos(e_i) * s_sin - math.sin(e_i) * s_cos)


COUPLINGS: dict[str, CouplingKind] = {
    "linear": CouplingKind("linear", 1, _linear_pre, _linear_post, "G * sum_j w_ij e_j(t - d_ij)"),
    "difference": CouplingKind(
        "difference", 1, _linear_pre, _difference_post, "G * sum_j w_ij (e_j(t - d_ij) - e_i(t))"
    ),
    "sine": CouplingKind("sine", 2, _sine_pre, _sine_post, "G * sum_j w_ij sin(e_j(t - d_ij) - e_i(t))"),
}
