"""Names, dimensions and attributes of the variables in a study's dataset."""

from __future__ import annotations

import numpy as np

from ..kernels import phases

GRID_DIMS = ("eta_d", "eta_g", "lam", "sigma")
STEP_DIM = "step"
TRUE_DIM = "true_point"
GENERATED_DIM = "generated_point"
SPACE_DIM = "space_axis"

#: Integer written where a configuration has not been computed yet.
NOT_COMPUTED = -1

OBSERVED_PHASES = {
    phases.CONVERGED: "converged",
    phases.OSCILLATING: "oscillating",
    phases.NOT_CONVERGED: "not_converged",
    phases.DIVERGED: "diverged",
    phases.ESCAPED: "escaped",
    phases.CHAOTIC: "chaotic",
}
PREDICTED_PHASES = {
    phases.CONVERGES_MONOTONE: "converges_monotone",
    phases.CONVERGES_OSCILLATING: "converges_oscillating",
    phases.MARGINAL: "marginal",
    phases.DIVERGES: "diverges",
    phases.NO_FIXED_POINT: "no_fixed_point",
}
#: The predicted phase that each observed phase agrees with.
AGREEING_PREDICTION = {
    phases.CONVERGED: phases.CONVERGES_MONOTONE,
    phases.OSCILLATING: phases.CONVERGES_OSCILLATING,
    phases.NOT_CONVERGED: phases.MARGINAL,
    phases.DIVERGED: phases.DIVERGES,
    phases.ESCAPED: phases.DIVERGES,
}

COORD_ATTRS = {
    "eta_d": {"long_name": "discriminator learning rate"},
    "eta_g": {"long_name": "generator learning rate"},
    "lam": {"long_name": "discriminator regularization"},
    "sigma": {"long_name": "Gaussian kernel bandwidth"},
    "step": {"long_name": "GDA step", "units": "1"},
}


def _flags(meanings: dict[int, str]) -> dict:
    codes = [NOT_COMPUTED, *meanings]
    return {
        "flag_values": np.array(codes, dtype=np.int8),
        "flag_meanings": " ".join(["not_computed", *meanings.values()]),
    }


# name: (dimensions after the grid dimensions, dtype, attributes)
SIMULATION_VARIABLES = {
    "error": ((STEP_DIM,), np.float64, {
        "long_name": "generator error e_k",
        "description": "sqrt(sum_j q_j |y_j^k - x_a(j)|^2 / sum_j q_j), x_a(j) the true point "
                       "nearest to y_j^0; NaN after a blow-up",
    }),
    "final_error": ((), np.float64, {
        "long_name": "generator error after the last step", "description": "NaN after a blow-up",
    }),
    "decay_rate": ((), np.float64, {
        "long_name": "empirical per-step decay rate of the generator error",
        "description": "exp of the least-squares slope of log e_k after the curvature transient "
                       "and above the rounding floor; NaN where no such window exists",
    }),
    "observed_phase": ((), np.int8, {
        "long_name": "phase observed in the simulation", **_flags(OBSERVED_PHASES),
    }),
    "blowup_step": ((), np.int32, {
        "long_name": "step at which the state stopped being finite or bounded",
        "description": "-1: never; -2: not computed",
    }),
    "method": ((), np.int8, {
        "long_name": "method that computed the history term of the GDA step",
        **_flags({0: "direct", 1: "expansion"}),
    }),
    "switch_step": ((), np.int32, {
        "long_name": "step from which an expansion run used the direct sum",
        "description": "-1: never, or a direct run; -2: not computed",
    }),
    "sign_changes": ((), np.int32, {
        "long_name": "number of steps at which the displacement reversed",
        "description": "steps k with sum_j q_j <d_j^k, d_j^(k-1)> < 0, d_j the displacement "
                       "from the nearest true point; -1: not computed",
    }),
}
CHAOS_VARIABLE = {
    "chaos_separation": ((), np.float64, {
        "long_name": "final separation of a twin run with per-step relative noise, over the largest error",
        "description": "above the chaos level the run is chaotic and its final values are NaN",
    }),
}
POSITION_VARIABLE = {
    "final_position": ((GENERATED_DIM, SPACE_DIM), np.float64, {
        "long_name": "generated point positions after the last step",
    }),
}
THEORY_VARIABLES = {
    "rho_generator": ((), np.float64, {
        "long_name": "spectral radius of the linearized generator block",
    }),
    "dominant_real": ((), np.float64, {
        "long_name": "real part of the generator block's dominant eigenvalue",
    }),
    "dominant_imag": ((), np.float64, {
        "long_name": "imaginary part of the generator block's dominant eigenvalue",
        "description": "as a magnitude; 0 for a real eigenvalue",
    }),
    "rho_total": ((), np.float64, {
        "long_name": "spectral radius including the discriminator mode",
    }),
    "discriminator_eigenvalue": ((), np.float64, {
        "long_name": "discriminator mode eigenvalue 1 - eta_d lam",
    }),
    "curvature_fixed_point": ((), np.float64, {
        "long_name": "fixed point c* = -delta / (lam sigma^2) of the discriminator curvature",
    }),
    "rho_continuous": ((), np.float64, {
        "long_name": "continuous-time approximation of the generator decay factor",
    }),
    "lam_opt_continuous": ((), np.float64, {
        "long_name": "optimal regularization sqrt(mu q delta) / sigma in the continuous-time approximation",
    }),
    "predicted_phase": ((), np.int8, {
        "long_name": "phase predicted by the linearized theory", **_flags(PREDICTED_PHASES),
    }),
}


def get_result_variables(save_positions: bool, chaos_check: bool = False) -> dict:
    """Return every result variable of a study, in dataset order."""
    variables = dict(SIMULATION_VARIABLES)
    if save_positions:
        variables.update(POSITION_VARIABLE)
    if chaos_check:
        variables.update(CHAOS_VARIABLE)
    variables.update(THEORY_VARIABLES)
    return variables


def get_fill_value(name: str, dtype) -> float | int:
    """Return the value that marks a configuration not computed yet."""
    if np.dtype(dtype).kind == "f":
        return np.nan
    return -2 if name in ("blowup_step", "switch_step") else NOT_COMPUTED
