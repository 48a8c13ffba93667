"""gdasweep: large parameter studies of gradient descent-ascent in kernel GANs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("gdasweep")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
