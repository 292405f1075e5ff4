"""The NMF engine: numpy, plus numba kernels for the fused updates; no I/O, no printing.

numba is an accelerator: without it the numpy kernels give the same results (see
:func:`numba_status`), and :func:`kernels_need_compiling` tells whether a first run will compile.

Convention, used in every docstring of this package::

    Y  (K x N)  ~  H (K x M)  @  U (M x N)

Y is non-negative data (K frequency bins x N frames), H holds the spectral *bases* (one column per
component) and U the *activations* (one row per component).
"""

from .backend import kernels_need_compiling, numba_status
from .divergence import DIVERGENCES, beta_divergence, beta_from_name, mm_exponent
from .factorize import DEFAULT_FLOOR, NMFResult, Progress, check_parameters, factorize
from .init import nndsvda_init, random_init

__all__ = [
    "DEFAULT_FLOOR",
    "DIVERGENCES",
    "NMFResult",
    "Progress",
    "beta_divergence",
    "beta_from_name",
    "check_parameters",
    "factorize",
    "kernels_need_compiling",
    "mm_exponent",
    "nndsvda_init",
    "numba_status",
    "random_init",
]
