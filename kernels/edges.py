"""How the loop shells walk the connectome's edges: CSR rows split into long and short edges.

With conduction delays, the coupling input of node ``i`` at step ``t`` is
``S_i(t) = sum_j w_ij e_j(t - d_ij)`` over a history ring buffer. Read edge by edge and
step by step, every edge touches a different slot of the ring (one scattered cache line
per edge, per step, per block of simulations) and the ring (nodes x max delay x lanes)
overflows the caches: that was 10x slower than coupling without delays.

The shells instead integrate in *blocks* of ``T`` steps. An edge whose delay is at least
``T`` (a *long* edge) only reads history that already exists when the block starts, so
its contributions to the ``T + 1`` coupling times of the block (``n0 .. n0 + T``: Heun's
corrector needs the block's end) are summed once, up front: each long edge streams ``T + 1``
consecutive history slots (the ring is laid out ``(channel, node, slot, lane)``), and the
sum serves both of Heun's evaluations of a time. The few *short* edges (delay below ``T``)
are summed at every evaluation from the recent, cache-resident end of the ring.

Exactness: nothing is approximated. Each long sum runs over the row's long edges in CSR
order; each short sum over its short edges with four partial accumulators (edge ``k`` of
the row's short edges goes to accumulator ``k % 4``, combined as ``(a0 + a1) + (a2 + a3)``),
and the input is ``long + short``. The split depends only on the delays (through ``T``),
never on the batch, chunking, threads or device, so a simulation's result is the same
whatever runs it. Without delays every edge is short.

The block length ``T`` minimises a cost model: a long edge costs ``(T + 1) / T`` history
reads per step, a short one :data:`SHORT_EDGE_COST` (Heun reads it twice per step, from
scattered slots). Longer blocks need a larger block buffer; ``T`` is capped at
:data:`MAX_BLOCK` steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EdgePlan", "plan_edges", "MAX_BLOCK", "SHORT_EDGE_COST", "N_PARTIAL", "NUMERICS_VERSION"]

# The kernels' arithmetic, as far as it decides the bits of a result (summation orders):
# 1 summed every row in CSR order at every evaluation; 2 is this module's block design.
# Stores record it, so that rows computed with different roundings are never mixed.
NUMERICS_VERSION = 2

MAX_BLOCK = 63  # steps per block: T + 1 = 64 coupling times
SHORT_EDGE_COST = 2.0  # history reads per step of a short edge, in units of a long edge's read
N_PARTIAL = 4  # partial accumulators of the short (and delay-free) sums


@dataclass(frozen=True, eq=False)
class EdgePlan:
    """The connectome as the shells read it.

    Attributes
    ----------
    indptr : (N + 1,) uint64
        Row ``i``'s edges are ``indptr[i] .. indptr[i + 1]`` (afferent edges of node i).
    split : (N,) uint64
        Row ``i``'s long edges are ``indptr[i] .. split[i]``, its short edges
        ``split[i] .. indptr[i + 1]`` (without delays, ``split = indptr[:-1]``).
    indices : (E,) uint64
        Source node of each edge (increasing within the long and the short part of a row).
    weights : (E,) float64
    delays : (E,) int64
        Delay of each edge in steps.
    back : (E,) uint64
        ``H - delay``: the history slot an edge reads at head slot ``h`` is
        ``h + back`` wrapped into ``[0, H)`` (unsigned arithmetic: no sign checks).
    block : int
        ``T``, steps per block (1 without delays; it is then unused).
    ring : int
        ``H``, the history ring's length in steps: ``max(max delay, T) + 2`` (1 without delays).
    """

    indptr: np.ndarray
    split: np.ndarray
    indices: np.ndarray
    weights: np.ndarray
    delays: np.ndarray
    back: np.ndarray
    block: int
    ring: int

    @property
    def n_long(self) -> int:
        return int(np.sum(self.split - self.indptr[:-1]))

    @property
    def n_short(self) -> int:
        return int(self.indices.size) - self.n_long


def choose_block(delays: np.ndarray, max_block: int = MAX_BLOCK) -> int:
    """``T`` minimising ``long * (T + 1) / T + SHORT_EDGE_COST * short`` (the smallest
    such ``T``), where long edges have a delay of at least ``T``."""
    if delays.size == 0:
        return 1
    blocks = np.arange(1, max_block + 1)
    n_short = np.searchsorted(np.sort(delays), blocks, side="left")  # delays < T
    cost = (delays.size - n_short) * (blocks + 1) / blocks + SHORT_EDGE_COST * n_short
    return int(blocks[np.argmin(cost)])


def plan_edges(weights: np.ndarray, delay_steps: np.ndarray | None = None, *, block: int | None = None) -> EdgePlan:
    """Plan the edges of a weight matrix (rows: targets, columns: sources).

    Parameters
    ----------
    weights : (N, N) array
        Coupling weights ``w_ij`` (zero: no edge).
    delay_steps : (N, N) int array or None
        Delays in steps; None: no delays.
    block : int, optional
        Force the block length ``T`` (>= 1); default: :func:`choose_block`. Results
        depend on ``T`` (it decides which sums are split), so it is part of the
        configuration, never of the schedule.
    """
    w = np.asarray(weights)
    rows, cols = np.nonzero(w)
    n = w.shape[0]
    if delay_steps is None:
        delays = np.zeros(rows.size, dtype=np.int64)
        long = np.zeros(rows.size, dtype=bool)
        T, H = 1, 1
    else:
        delays = np.asarray(delay_steps)[rows, cols].astype(np.int64)
        if np.any(delays < 0):
            raise ValueError("delays must be >= 0 steps")
        T = choose_block(delays) if block is None else int(block)
        if T < 1:
            raise ValueError(f"block must be >= 1 step, got {block}")
        H = max(int(delays.max(initial=0)), T) + 2
        long = delays >= T
    # per row: long edges first, then short ones, each by source node (np.nonzero's order)
    order = np.lexsort((cols, ~long, rows))
    rows, cols, delays, long = rows[order], cols[order], delays[order], long[order]
    counts = np.bincount(rows, minlength=n)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.uint64)
    n_long = np.bincount(rows, weights=long, minlength=n).astype(np.int64)
    split = indptr[:-1] + n_long.astype(np.uint64)
    back = (H - delays).astype(np.uint64) if delay_steps is not None else np.zeros(rows.size, dtype=np.uint64)
    return EdgePlan(
        indptr=indptr,
        split=split,
        indices=cols.astype(np.uint64),
        weights=w[rows, cols].astype(np.float64),
        delays=delays,
        back=back,
        block=T,
        ring=H,
    )
