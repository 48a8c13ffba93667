"""Phase codes and the thresholds that decide them.

Observed codes classify a simulated run; predicted codes classify the
linearized theory's dominant eigenvalue. The dataset stores these integers
with CF ``flag_values`` and ``flag_meanings``, and the thresholds as
attributes. This module imports nothing, so the client reads it without
loading Numba.
"""

# Observed phase of a simulated run.
CONVERGED = 0
OSCILLATING = 1
NOT_CONVERGED = 2
DIVERGED = 3
ESCAPED = 4
CHAOTIC = 5

# Phase predicted by the linearized theory.
CONVERGES_MONOTONE = 0
CONVERGES_OSCILLATING = 1
MARGINAL = 2
DIVERGES = 3
NO_FIXED_POINT = 4

# The decay rate is fitted from the first step with |1 - eta_d lam|^k below
# TRANSIENT_LEVEL, while e_k stays above FLOOR_LEVEL * e_0, over at least
# MIN_FIT_STEPS steps.
TRANSIENT_LEVEL = 1e-3
FLOOR_LEVEL = 1e-10
MIN_FIT_STEPS = 20
# The fit follows the local maxima of e_k when there are at least this many.
MIN_ENVELOPE_POINTS = 2
# The two-mode fit is degenerate below this relative determinant.
SINGULAR_LEVEL = 1e-9
# A run whose final error exceeds its initial error and this many bandwidths
# has left the region where the Gaussian kernel's gradient still moves it.
ESCAPE_RADIUS = 4.0
# A run stops, marked diverged, once its error exceeds this many times max(e_0, sigma).
DIVERGENCE_FACTOR = 1e6
# |z| within this of 1 is predicted marginal.
MARGINAL_TOLERANCE = 1e-12
# An eigenvalue whose imaginary part is below this fraction of its modulus is real.
REAL_TOLERANCE = 1e-12
# A twin run with relative noise of 1e-12 per step ends this far apart, relative to
# the largest error, only when the dynamics amplify tiny differences without bound.
# On the two-point study such runs separate by 16 and 25, all others by at most 4e-11.
CHAOS_LEVEL = 1e-6
