"""Fused numba kernel of the stereo spatial model: one pass over a block of bins per update.

For every bin (f, n) of a block it forms the model covariance X^(f, n) = sum_j P_j(f, n) R_j(f)
+ floor I (2 x 2 Hermitian), solves X^ y = x, and writes each source's two MM terms

    a_j = tr(X^-1 R_j),   b_j = y^H R_j y            (real, non-negative)

and (with ``want_objective``) adds log det X^ + x^H X^-1 x to the objective; with ``want_sums`` it also accumulates the
spatial statistics sum_n P_j X^-1 and sum_n P_j y y^H per source and frequency. Rows (bins) run in
parallel; every row's sums are its own, so results do not depend on the thread count.

Layout: ``x`` (2, F, B) complex, ``P``, ``a``, ``b`` (J, F, B) real, ``spatial`` (J, F, 4) real
float64 holding (r11, r22, re r12, im r12), ``sums`` (J, F, 8) float64 (A11, A22, re A12, im A12 and the
same for S), ``objective`` (F,) float64.
"""

from __future__ import annotations

import numba as nb
import numpy as np

_FAST = {"reassoc", "contract", "nsz"}


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _bin_model(P, spatial, floor, f, n):
    """X^ at bin (f, n): h11, h22 and h12 (re, im) of sum_j P_j R_j + floor I, in float64: X^ may be
    near singular (sources panned to one point), where float32's det loses every digit (measured:
    images that missed the mixture by 4% of its peak)."""
    h11 = np.float64(floor)
    h22 = np.float64(floor)
    h12re = 0.0
    h12im = 0.0
    for j in range(P.shape[0]):
        p = np.float64(P[j, f, n])
        h11 += p * spatial[j, f, 0]
        h22 += p * spatial[j, f, 1]
        h12re += p * spatial[j, f, 2]
        h12im += p * spatial[j, f, 3]
    return h11, h22, h12re, h12im


@nb.njit(cache=True, fastmath=_FAST, parallel=True)
def stereo_terms(x, P, spatial, floor, a, b, objective, want_objective, sums, want_sums):
    J, F, B = P.shape
    for f in nb.prange(F):
        # the bin's inverse model and y = X^-1 x for the whole row first (one sweep over the
        # sources' spectra), then each source's terms in a sweep of its own, which vectorises
        inverse = np.empty((3, B))  # X^-1: i11, i22 and i12 (re, im) below
        inverse_im = np.empty(B)
        outer = np.empty((4, B))  # y y^H: yy11, yy22, re yy12, im yy12
        total = 0.0
        for n in range(B):
            h11, h22, h12re, h12im = _bin_model(P, spatial, floor, f, n)
            det = h11 * h22 - (h12re * h12re + h12im * h12im)
            inv = 1.0 / det
            # X^-1 = [[h22, -h12], [-conj(h12), h11]] / det
            i11 = h22 * inv
            i22 = h11 * inv
            i12re = -h12re * inv
            i12im = -h12im * inv
            x1 = x[0, f, n]
            x2 = x[1, f, n]
            x1re, x1im, x2re, x2im = x1.real, x1.imag, x2.real, x2.imag
            y1re = i11 * x1re + (i12re * x2re - i12im * x2im)
            y1im = i11 * x1im + (i12re * x2im + i12im * x2re)
            y2re = (i12re * x1re + i12im * x1im) + i22 * x2re  # conj(i12) x1 + i22 x2
            y2im = (i12re * x1im - i12im * x1re) + i22 * x2im
            if want_objective:  # the logarithm costs as much as the rest of the bin
                total += np.log(det) + (x1re * y1re + x1im * y1im + x2re * y2re + x2im * y2im)
            inverse[0, n] = i11
            inverse[1, n] = i22
            inverse[2, n] = i12re
            inverse_im[n] = i12im
            outer[0, n] = y1re * y1re + y1im * y1im
            outer[1, n] = y2re * y2re + y2im * y2im
            outer[2, n] = y1re * y2re + y1im * y2im  # y1 conj(y2)
            outer[3, n] = y1im * y2re - y1re * y2im
        objective[f] += total
        for j in range(J):
            # tr(M R) for Hermitian M and R = m11 r11 + m22 r22 + 2 Re(m12 conj(r12))
            r11 = np.float64(spatial[j, f, 0])
            r22 = np.float64(spatial[j, f, 1])
            r12re = 2.0 * spatial[j, f, 2]
            r12im = 2.0 * spatial[j, f, 3]
            for n in range(B):
                a[j, f, n] = (
                    r11 * inverse[0, n]
                    + r22 * inverse[1, n]
                    + (r12re * inverse[2, n] + r12im * inverse_im[n])
                )
                b[j, f, n] = (
                    r11 * outer[0, n] + r22 * outer[1, n] + (r12re * outer[2, n] + r12im * outer[3, n])
                )
            if want_sums:
                s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = 0.0
                for n in range(B):
                    p = np.float64(P[j, f, n])
                    s0 += p * inverse[0, n]
                    s1 += p * inverse[1, n]
                    s2 += p * inverse[2, n]
                    s3 += p * inverse_im[n]
                    s4 += p * outer[0, n]
                    s5 += p * outer[1, n]
                    s6 += p * outer[2, n]
                    s7 += p * outer[3, n]
                sums[j, f, 0] += s0
                sums[j, f, 1] += s1
                sums[j, f, 2] += s2
                sums[j, f, 3] += s3
                sums[j, f, 4] += s4
                sums[j, f, 5] += s5
                sums[j, f, 6] += s6
                sums[j, f, 7] += s7


@nb.njit(cache=True, fastmath=_FAST, parallel=True)
def stereo_images(x, P, spatial, floor, out):
    """out[j] = P_j R_j y + floor y / J with y = X^-1 x: the J images of a block, which add up to x."""
    J, F, B = P.shape
    share = floor / J
    for f in nb.prange(F):
        for n in range(B):
            h11, h22, h12re, h12im = _bin_model(P, spatial, floor, f, n)
            det = h11 * h22 - (h12re * h12re + h12im * h12im)
            inv = 1.0 / det
            x1 = x[0, f, n]
            x2 = x[1, f, n]
            y1 = (h22 * x1 - complex(h12re, h12im) * x2) * inv
            y2 = (h11 * x2 - complex(h12re, -h12im) * x1) * inv
            for j in range(J):
                p = np.float64(P[j, f, n])
                r12 = complex(spatial[j, f, 2], spatial[j, f, 3])
                out[j, 0, f, n] = p * (spatial[j, f, 0] * y1 + r12 * y2) + share * y1
                out[j, 1, f, n] = p * (r12.conjugate() * y1 + spatial[j, f, 1] * y2) + share * y2


def examples(dtype=np.float32):
    """Small arguments that compile both kernels for ``dtype`` (and its complex type)."""
    complex_type = np.complex64 if np.dtype(dtype) == np.float32 else np.complex128
    J, F, B = 2, 3, 4
    x = np.ones((2, F, B), complex_type)
    P = np.ones((J, F, B), dtype)
    spatial = np.zeros((J, F, 4))
    spatial[:, :, :2] = 0.5
    a = np.empty_like(P)
    b = np.empty_like(P)
    floor = dtype(1e-6) if callable(dtype) else np.dtype(dtype).type(1e-6)
    sliced = np.ones((2, F, 2 * B), complex_type)[:, :, :B]  # the fit passes blocks of frames of X
    return [
        (stereo_terms, (x, P, spatial, floor, a, b, np.zeros(F), True, np.zeros((J, F, 8)), True)),
        (stereo_terms, (sliced, P, spatial, floor, a, b, np.zeros(F), True, np.zeros((J, F, 8)), True)),
        (stereo_images, (x, P, spatial, floor, np.empty((J, 2, F, B), complex_type))),
    ]
