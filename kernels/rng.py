"""Counter-based random numbers: Philox4x32-10 and a branch-free Box-Muller transform.

One scalar implementation, written with integer and float arithmetic only, so that
``numba.njit(inline="always")`` compiles it into SIMD code across simulations on the CPU
and ``numba.cuda.jit(device=True)`` compiles the same source for the GPU (:func:`make_rng`).

Every normal variate is a pure function of ``(seed, step, node, sim, stream, word)``:
a simulation draws the same noise whatever batch, chunk, worker or device it runs on.

References
----------
Salmon, Moraes, Dror, Shaw (2011). Parallel random numbers: as easy as 1, 2, 3. SC'11.
(Philox4x32-10 and its known-answer test vectors, Random123.)
Box & Muller (1958). A note on the generation of random normal deviates.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import numpy as np
from numba import njit

__all__ = [
    "make_rng",
    "Rng",
    "philox4x32",
    "normal_pair",
    "normals4",
    "uniform01",
    "STREAM_NOISE",
    "STREAM_INIT",
    "STREAM_PRIOR",
    "normals_numpy",
    "uniforms_numpy",
]

# Streams separate the uses of one seed (counter word 3, high half).
STREAM_NOISE = 0
STREAM_INIT = 1
STREAM_PRIOR = 2

_M0 = np.uint64(0xD2511F53)
_M1 = np.uint64(0xCD9E8D57)
_W0 = np.uint64(0x9E3779B9)
_W1 = np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)

# Constants of the normal transform, kept float32 so the arithmetic stays float32.
_F = np.float32
_LN2 = _F(0.6931471805599453)
_SQRT2 = _F(1.4142135623730951)
_QUARTER_PI = _F(0.7853981633974483)
_TWO_M24 = _F(2.0**-24)
_TWO_M29 = _F(2.0**-29)
_ONE, _TWO, _HALF = _F(1.0), _F(2.0), _F(0.5)
_L3, _L5, _L7, _L9 = _F(1 / 3), _F(1 / 5), _F(1 / 7), _F(1 / 9)
_S3, _S5, _S7, _S9 = _F(1 / 6), _F(1 / 120), _F(1 / 5040), _F(1 / 362880)
_C2, _C4, _C6, _C8, _C10 = _F(1 / 2), _F(1 / 24), _F(1 / 720), _F(1 / 40320), _F(1 / 3628800)
_U1, _U2, _U3, _U4, _U5, _U6, _U7, _U8, _U16, _U24, _U25, _U29 = (
    np.uint64(k) for k in (1, 2, 3, 4, 5, 6, 7, 8, 16, 24, 25, 29)
)
_LOW29 = np.uint64((1 << 29) - 1)
_P16, _P8, _P4 = _F(2.0**16), _F(2.0**8), _F(2.0**4)
_M16, _M8, _M4 = _F(2.0**-16), _F(2.0**-8), _F(2.0**-4)


class Rng(NamedTuple):
    """The generator's scalar functions, compiled by one ``jit`` decorator."""

    philox4x32: Callable
    normal_pair: Callable
    normals4: Callable
    uniform01: Callable
    minus_two_log: Callable
    cos_sin_2pi: Callable
    box_muller: Callable


def make_rng(jit: Callable) -> Rng:
    """The generator's functions as plain Python, each decorated with ``jit``.

    ``numba.njit(inline="always")`` for the CPU shells (the module-level functions
    below), ``numba.cuda.jit(device=True)`` for the CUDA shell, the identity for plain
    Python. Helpers are closed over in their jitted form, so the same source compiles
    for every target.
    """

    @jit
    def _round(c0, c1, c2, c3, k0, k1):
        p0 = _M0 * c0
        p1 = _M1 * c2
        return (
            ((p1 >> _S32) ^ c1 ^ k0) & _MASK,
            p1 & _MASK,
            ((p0 >> _S32) ^ c3 ^ k1) & _MASK,
            p0 & _MASK,
        )

    @jit
    def philox4x32(c0, c1, c2, c3, k0, k1):
        """Philox4x32-10 block: four 32-bit words (held in uint64) from a counter and key."""
        c0, c1, c2, c3 = np.uint64(c0), np.uint64(c1), np.uint64(c2), np.uint64(c3)
        k0, k1 = np.uint64(k0), np.uint64(k1)
        for _ in range(9):
            c0, c1, c2, c3 = _round(c0, c1, c2, c3, k0, k1)
            k0 = (k0 + _W0) & _MASK
            k1 = (k1 + _W1) & _MASK
        return _round(c0, c1, c2, c3, k0, k1)

    @jit
    def _minus_two_log(x):
        """-2 ln(u) for u = (2 * (x >> 8) + 1) / 2**25, u in (0, 1); float32, branch-free."""
        r = _F(np.int64(((x >> _U8) << _U1) | _U1))  # odd integer m in [1, 2**25)
        kf = _F(0.0)  # r = m / 2**k in [1, 2) by a binary search with selects (exact scalings)
        big = r >= _P16
        r, kf = (r * _M16 if big else r), (kf + _F(16.0) if big else kf)
        big = r >= _P8
        r, kf = (r * _M8 if big else r), (kf + _F(8.0) if big else kf)
        big = r >= _P4
        r, kf = (r * _M4 if big else r), (kf + _F(4.0) if big else kf)
        big = r >= _TWO
        r, kf = (r * _HALF if big else r), (kf + _ONE if big else kf)
        big = r >= _TWO
        r, kf = (r * _HALF if big else r), (kf + _ONE if big else kf)
        big = r > _SQRT2  # centre the mantissa on 1: r in [1/sqrt2, sqrt2)
        r, kf = (r * _HALF if big else r), (kf + _ONE if big else kf)
        s = (r - _ONE) / (r + _ONE)  # |s| <= 0.1716: atanh series to s**9
        s2 = s * s
        ln_r = _TWO * s * (_ONE + s2 * (_L3 + s2 * (_L5 + s2 * (_L7 + s2 * _L9))))
        # ln u = ln m - 25 ln 2 = (k - 25) ln 2 + ln r
        return _TWO * ((_F(25.0) - kf) * _LN2 - ln_r)

    @jit
    def _cos_sin_2pi(x):
        """(cos, sin) of an angle uniform on [0, 2 pi) encoded by the 32 bits of x."""
        octant = x >> _U29
        t = (_F(x & _LOW29) + _HALF) * _TWO_M29  # position inside the octant, (0, 1)
        odd = (octant & _U1) == _U1
        b = (_ONE - t if odd else t) * _QUARTER_PI  # reduced angle in [0, pi/4]
        b2 = b * b
        sn = b * (_ONE - b2 * (_S3 - b2 * (_S5 - b2 * (_S7 - b2 * _S9))))
        cs = _ONE - b2 * (_C2 - b2 * (_C4 - b2 * (_C6 - b2 * (_C8 - b2 * _C10))))
        swap = (((octant + _U1) >> _U1) & _U1) == _U1  # octants 1, 2, 5, 6
        # octants 2..5: (octant - 2) mod 8 <= 3, written without an unsigned wrap-around
        # (same result everywhere; NumPy scalars in the CUDA simulator warn on wrap)
        neg_cos = ((octant + _U6) & _U7) <= _U3
        neg_sin = octant >= _U4
        c = sn if swap else cs
        s = cs if swap else sn
        return (-c if neg_cos else c), (-s if neg_sin else s)

    @jit
    def _box_muller(x_radius, x_angle):
        rho = np.float32(math.sqrt(_minus_two_log(x_radius)))  # float32 sqrt (np.sqrt: not on CUDA)
        c, s = _cos_sin_2pi(x_angle)
        return rho * c, rho * s

    @jit
    def normal_pair(seed_lo, seed_hi, c0, c1, c2, c3):
        """Two standard normal float32 variates for one counter (uses two of Philox's words)."""
        x0, x1, _, _ = philox4x32(c0, c1, c2, c3, seed_lo, seed_hi)
        return _box_muller(x0, x1)

    @jit
    def normals4(seed_lo, seed_hi, c0, c1, c2, c3):
        """Four standard normal float32 variates for one counter."""
        x0, x1, x2, x3 = philox4x32(c0, c1, c2, c3, seed_lo, seed_hi)
        z0, z1 = _box_muller(x0, x1)
        z2, z3 = _box_muller(x2, x3)
        return z0, z1, z2, z3

    @jit
    def uniform01(x):
        """A float64 uniform on (0, 1) from one 32-bit word."""
        return (np.float64(x) + 0.5) * 2.0**-32

    return Rng(philox4x32, normal_pair, normals4, uniform01, _minus_two_log, _cos_sin_2pi, _box_muller)


# The CPU build: inlined into the shells' SIMD loops (the results are pinned by tests).
_cpu = make_rng(njit(inline="always"))
philox4x32, normal_pair, normals4, uniform01 = _cpu.philox4x32, _cpu.normal_pair, _cpu.normals4, _cpu.uniform01


def split_seed(seed: int) -> tuple[int, int]:
    """The two 32-bit key words of a non-negative 64-bit seed."""
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed}")
    return seed & 0xFFFFFFFF, seed >> 32


@njit(cache=True)
def _normals_block(seed_lo, seed_hi, c0, c1, c2, stream_word, out):
    # out: (len(c0), 4) for counters (c0[i], c1[i], c2[i], stream_word)
    for i in range(c0.shape[0]):
        z0, z1, z2, z3 = normals4(seed_lo, seed_hi, c0[i], c1[i], c2[i], stream_word)
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = z0, z1, z2, z3


@njit(cache=True)
def _words_block(seed_lo, seed_hi, c0, c1, c2, stream_word, out):
    for i in range(c0.shape[0]):
        x0, x1, x2, x3 = philox4x32(c0[i], c1[i], c2[i], stream_word, seed_lo, seed_hi)
        out[i, 0], out[i, 1], out[i, 2], out[i, 3] = x0, x1, x2, x3


def _counters(c0, c1, c2):
    arrays = np.broadcast_arrays(*(np.asarray(c, dtype=np.uint64) for c in (c0, c1, c2)))
    return arrays[0].shape, [np.array(a, dtype=np.uint64).ravel() for a in arrays]


def normals_numpy(seed: int, c0, c1, c2, stream: int = STREAM_NOISE, word: int = 0) -> np.ndarray:
    """Vectorised access to the kernels' normals: shape ``broadcast(c0, c1, c2) + (4,)``.

    ``word`` selects the group of four variates (states 4k..4k+3 of a node).
    """
    lo, hi = split_seed(seed)
    shape, (a, b, c) = _counters(c0, c1, c2)
    out = np.empty((a.size, 4), dtype=np.float32)
    _normals_block(np.uint64(lo), np.uint64(hi), a, b, c, np.uint64((stream << 16) | word), out)
    return out.reshape(shape + (4,))


def uniforms_numpy(seed: int, c0, c1, c2, stream: int, word: int = 0) -> np.ndarray:
    """Float64 uniforms on (0, 1), four per counter: shape ``broadcast(c0, c1, c2) + (4,)``."""
    lo, hi = split_seed(seed)
    shape, (a, b, c) = _counters(c0, c1, c2)
    out = np.empty((a.size, 4), dtype=np.uint64)
    _words_block(np.uint64(lo), np.uint64(hi), a, b, c, np.uint64((stream << 16) | word), out)
    return ((out.astype(np.float64) + 0.5) * 2.0**-32).reshape(shape + (4,))
