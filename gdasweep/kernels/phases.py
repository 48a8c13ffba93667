"""Integer phase codes shared by the compiled kernels and the dataset.

Observed codes classify a simulated run; predicted codes classify the
linearized theory's dominant eigenvalue. The dataset stores these integers
with CF ``flag_values`` and ``flag_meanings``.
"""

# Observed phase of a simulated run.
CONVERGED = 0
OSCILLATING = 1
NOT_CONVERGED = 2
DIVERGED = 3
ESCAPED = 4

# Phase predicted by the linearized theory.
CONVERGES_MONOTONE = 0
CONVERGES_OSCILLATING = 1
MARGINAL = 2
DIVERGES = 3
NO_FIXED_POINT = 4
