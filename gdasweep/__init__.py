"""gdasweep: large parameter studies of gradient descent-ascent in kernel GANs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gdasweep")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

from .sweeps import accessor as _accessor  # noqa: E402, F401  (registers the ``ds.gda`` accessor)


def open_study(path):
    """Open a study's store as a lazy xarray Dataset, with the ``ds.gda`` accessor.

    Parameters
    ----------
    path : str or path-like
        The store written by ``gdasweep run``.

    Returns
    -------
    xarray.Dataset
        Variables are Dask arrays; nothing is read until values are used.

    Examples
    --------
    >>> import gdasweep
    >>> ds = gdasweep.open_study("two_point.zarr")  # doctest: +SKIP
    >>> ds.gda.sel_ratio(0.1).observed_phase  # doctest: +SKIP
    """
    import xarray as xr

    return xr.open_zarr(path)


__all__ = ["__version__", "open_study"]
