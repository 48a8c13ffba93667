"""A vectorizable exponential for the kernel sums, accurate to about 1 ulp.

LLVM cannot vectorize a loop that calls ``math.exp``: the call goes to the C
library one value at a time, and the llvmlite wheels on PyPI are built without
Intel's SVML vector math library. The history sum of the GDA loop is mostly
such calls. ``exp_array`` writes ``exp(t)`` with arithmetic only (range
reduction ``t = k ln2 + r``, a degree-13 Taylor polynomial for ``exp(r)`` on
``|r| <= ln2 / 2`` and the scale ``2^k`` assembled in the exponent bits), so
LLVM vectorizes the loop. Measured on 1,000 values of ``-Exp(5)``: 1.6 ns per
value against 4.6 ns for ``math.exp``, maximum error 0.99 ulp.

Arguments below ``-708`` give exactly 0 instead of a subnormal number, so
subnormal arithmetic (often 100 times slower) stays out of the sums. The
true values there are below ``3.3e-308``.
"""

import math

import numpy as np
from numba import float64, int64, njit, void

from .._compile_options import CACHE, FASTMATH

_JIT = dict(nogil=True, cache=CACHE, fastmath=FASTMATH)

_INV_LN2 = 1.4426950408889634
# ln 2 split so that k * _LN2_HIGH is exact for |k| < 2^11.
_LN2_HIGH = 6.93147180369123816490e-01
_LN2_LOW = 1.90821492927058770002e-10
_SMALLEST = -708.0
_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = (
    1.0 / math.factorial(i) for i in range(14)
)


@njit(inline="always", **_JIT)
def reduced_exp(clipped, k):
    """Return ``exp(clipped - k ln 2)`` for ``|clipped - k ln 2| <= ln2 / 2``, the polynomial part of ``exp``.

    ``k = floor(clipped / ln 2 + 1/2)``; the caller multiplies by ``2^k``.
    """
    r = (clipped - k * _LN2_HIGH) - k * _LN2_LOW
    p = _C13
    p = p * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _C1
    return p * r + _C0


@njit(void(float64[::1], float64[::1], int64[::1]), **_JIT)
def exp_array(t, out, scratch):
    """Write ``exp(t[i])`` to ``out[i]`` for ``t <= 709``; ``scratch`` is int64 of the same length."""
    n = t.shape[0]
    for i in range(n):
        x = t[i]
        clipped = max(x, _SMALLEST)
        k = math.floor(clipped * _INV_LN2 + 0.5)
        out[i] = reduced_exp(clipped, k) if x >= _SMALLEST else 0.0
        scratch[i] = (np.int64(k) + 1023) << 52

    scale = scratch.view(np.float64)
    for i in range(n):
        out[i] *= scale[i]
