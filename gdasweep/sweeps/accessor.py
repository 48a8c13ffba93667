"""The ``ds.gda`` accessor: common questions about a study's dataset.

Importing ``gdasweep`` registers it, so every xarray Dataset has ``ds.gda``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import schema


@xr.register_dataset_accessor("gda")
class GDAAccessor:
    """Selections and derived quantities of a gdasweep dataset.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> import gdasweep
    >>> ds = xr.Dataset(coords={"eta_d": [0.1, 0.2], "eta_g": [0.1, 0.2]})
    >>> ds.gda.ratio.values
    array([[1. , 2. ],
           [0.5, 1. ]])
    """

    def __init__(self, dataset: xr.Dataset):
        self._ds = dataset

    @property
    def ratio(self) -> xr.DataArray:
        """Learning-rate ratio ``mu = eta_g / eta_d`` over ``(eta_d, eta_g)``."""
        ratio = self._ds["eta_g"] / self._ds["eta_d"]
        ratio.attrs = {"long_name": "learning-rate ratio eta_g / eta_d"}
        return ratio.transpose("eta_d", "eta_g")

    def sel_ratio(self, ratio: float, rtol: float = 1e-9) -> xr.Dataset:
        """Return the configurations whose ``eta_g / eta_d`` equals ``ratio``.

        Parameters
        ----------
        ratio : float
            The learning-rate ratio ``eta_g / eta_d``.
        rtol : float
            Relative tolerance of the comparison.

        Returns
        -------
        xarray.Dataset
            The matching ``(eta_d, eta_g)`` pairs along a new dimension ``pair``.

        Raises
        ------
        KeyError
            If no pair of learning rates has that ratio.

        Examples
        --------
        >>> import xarray as xr
        >>> import gdasweep
        >>> ds = xr.Dataset(coords={"eta_d": [0.1, 0.2], "eta_g": [0.1, 0.2]})
        >>> ds.gda.sel_ratio(1.0)["eta_d"].values
        array([0.1, 0.2])
        """
        stacked = self._ds.stack(pair=("eta_d", "eta_g"))
        values = (stacked["eta_g"] / stacked["eta_d"]).values
        mask = np.isclose(values, ratio, rtol=rtol, atol=0.0)
        if not mask.any():
            available = np.unique(np.round(values, 12))
            raise KeyError(f"no (eta_d, eta_g) pair has eta_g / eta_d = {ratio!r}; ratios in the grid: "
                           f"{available[:10].tolist()}{' ...' if available.size > 10 else ''}")
        return stacked.isel(pair=np.flatnonzero(mask))

    @property
    def agreement(self) -> xr.DataArray:
        """1 where the observed phase agrees with the prediction, 0 where not, NaN where not comparable.

        Not comparable: configurations not computed yet, chaotic runs and
        predictions without a fixed point.
        """
        observed = self._ds["observed_phase"]
        predicted = self._ds["predicted_phase"]
        expected = xr.full_like(observed, -99, dtype=np.int8)
        for code, prediction in schema.AGREEING_PREDICTION.items():
            expected = xr.where(observed == code, prediction, expected)
        comparable = (expected != -99) & (predicted != schema.phases.NO_FIXED_POINT)
        result = xr.where(comparable, (predicted == expected).astype(float), np.nan)
        result.attrs = {"long_name": "observed phase agrees with the predicted phase (1) or not (0)"}
        return result

    def disagreements(self) -> xr.Dataset:
        """Return the configurations whose observed phase disagrees with the prediction.

        Returns
        -------
        xarray.Dataset
            Those configurations along a new dimension ``config``, with the
            grid parameters as coordinates.
        """
        grid_dims = [dim for dim in schema.GRID_DIMS if dim in self._ds.dims]
        stacked = self._ds.stack(config=grid_dims)
        flags = self.agreement.stack(config=grid_dims).values
        return stacked.isel(config=np.flatnonzero(flags == 0.0))

    def boundary(self, x: str = "sigma", y: str = "lam", level: float = 1.0,
                 variable: str = "rho_generator") -> list[np.ndarray]:
        """Return the contour lines where ``variable`` equals ``level`` over two grid axes.

        Parameters
        ----------
        x, y : str
            The grid axes of the plane; every other grid axis must have length
            1 (select a slice first, e.g. ``ds.sel(eta_d=0.1, eta_g=0.1)``).
        level : float
            Contour level; 1 is the predicted stability boundary.
        variable : str
            The variable to contour.

        Returns
        -------
        list of ndarray
            One ``(n, 2)`` array of ``(x, y)`` coordinate values per line,
            linearly interpolated between grid points.

        Examples
        --------
        >>> import numpy as np, xarray as xr
        >>> import gdasweep
        >>> x, y = np.linspace(0, 2, 21), np.linspace(0, 1, 11)
        >>> rho = xr.DataArray(np.add.outer(y, x), coords={"lam": y, "sigma": x}, dims=("lam", "sigma"))
        >>> lines = xr.Dataset({"rho_generator": rho}).gda.boundary()
        >>> bool(np.allclose(lines[0].sum(axis=1), 1.0))
        True
        """
        import contourpy

        data = self._ds[variable]
        others = [dim for dim in data.dims if dim not in (x, y) and data.sizes[dim] > 1]
        if others:
            raise ValueError(f"boundary needs a plane over {x!r} and {y!r}, but {others} have more than one "
                             "value; select them first, e.g. ds.sel(eta_d=0.1)")
        data = data.squeeze(drop=True).transpose(y, x)
        values = np.asarray(data.values, dtype=float)
        generator = contourpy.contour_generator(
            np.asarray(self._ds[x].values, dtype=float), np.asarray(self._ds[y].values, dtype=float),
            np.ma.masked_invalid(values),
        )
        return [np.asarray(line) for line in generator.lines(level)]
