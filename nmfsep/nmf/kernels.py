"""Fused numba kernels for the MM updates: one pass over the data per update.

Every update needs, for each frame n, the model v = H u_n, elementwise terms a(y, v) and b(v), and
their projections on the bases. Separate numpy/BLAS calls stream K x N arrays through memory 10 to 14
times per iteration; here the data is read once per update:

* the general kernels (:func:`activation_terms`, :func:`basis_terms`, any rank, IS, KL and other
  betas) stage the model and terms of four frames in small 4 x K buffers, each basis row loaded once
  for the four frames (the model eight bases per sweep, the projections four); for IS and KL the
  terms are computed in the model's last sweep, so the model is never stored and read back;
* at ranks up to 4, :func:`activation_terms4` and :func:`basis_terms4` (IS and KL) keep every
  partial sum of four frames in registers, in one sweep over the bins; :func:`iteration_terms4`
  does both updates of an iteration in one pass over the data (two sweeps per group of four
  frames, the U update between them);
* the Euclidean distance has no elementwise terms: :func:`euclidean_projections` and
  :func:`euclidean_sums` compute its two projections four frames by four bases at a time.

At small ranks this is memory-bound and several times faster than BLAS; at large ranks the products
dominate and BLAS on tiles (in :mod:`.updates`) wins.

Layout (frame-major, so one frame is contiguous)::

    data (N x K) = Y^T,   bases_t (M x K) = H^T,   acts_t (N x M) = U^T

Frames are split into a fixed number of chunks, whatever the thread count; each chunk's sums are
kept apart and added in order afterwards, so results do not depend on how many threads ran.

Terms per kind (see :mod:`.divergence` and :mod:`.updates`)::

    IS       a = y / v^2        b = 1 / v
    KL       a = y / v          b = 1 (projection done outside)
    GENERAL  a = y v^(beta-2)   b = v^(beta-1)
"""

from __future__ import annotations

import math
import os
from typing import Any

import numba as nb
import numpy as np
from numba import types
from numba.extending import intrinsic

from .divergence import EUC, GENERAL, IS, KL  # the kinds of update, shared with the numpy kernel

#: Reassociation lets LLVM vectorise the length-K reductions; no assumptions about NaN or infinities.
_FAST = {"reassoc", "contract", "nsz"}


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _model(model, bases_t, activation):
    """model[k] = sum_m activation[m] bases_t[m, k], four rows per sweep over model."""
    K, M = model.shape[0], bases_t.shape[0]
    m = 0
    while m < M:
        if m + 4 <= M:
            h0, h1, h2, h3 = bases_t[m], bases_t[m + 1], bases_t[m + 2], bases_t[m + 3]
            w0, w1, w2, w3 = activation[m], activation[m + 1], activation[m + 2], activation[m + 3]
            if m == 0:
                for k in range(K):
                    model[k] = (w0 * h0[k] + w1 * h1[k]) + (w2 * h2[k] + w3 * h3[k])
            else:
                for k in range(K):
                    model[k] += (w0 * h0[k] + w1 * h1[k]) + (w2 * h2[k] + w3 * h3[k])
            m += 4
        else:
            h0 = bases_t[m]
            w0 = activation[m]
            if m == 0:
                for k in range(K):
                    model[k] = w0 * h0[k]
            else:
                for k in range(K):
                    model[k] += w0 * h0[k]
            m += 1


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _model4(model, bases_t, activations, M):
    """model[j] = activations[j, :M] @ bases_t[:M] for four frames j, eight basis rows per sweep
    (then four, then one): each row of the bases is loaded once for the four frames, each model row
    read and written once per eight bases."""
    K = model.shape[1]
    v0, v1, v2, v3 = model[0], model[1], model[2], model[3]
    u0, u1, u2, u3 = activations[0], activations[1], activations[2], activations[3]
    m = 0
    while m + 8 <= M:
        h0, h1, h2, h3 = bases_t[m], bases_t[m + 1], bases_t[m + 2], bases_t[m + 3]
        h4, h5, h6, h7 = bases_t[m + 4], bases_t[m + 5], bases_t[m + 6], bases_t[m + 7]
        a0, a1, a2, a3, a4, a5, a6, a7 = (
            u0[m],
            u0[m + 1],
            u0[m + 2],
            u0[m + 3],
            u0[m + 4],
            u0[m + 5],
            u0[m + 6],
            u0[m + 7],
        )
        b0, b1, b2, b3, b4, b5, b6, b7 = (
            u1[m],
            u1[m + 1],
            u1[m + 2],
            u1[m + 3],
            u1[m + 4],
            u1[m + 5],
            u1[m + 6],
            u1[m + 7],
        )
        c0, c1, c2, c3, c4, c5, c6, c7 = (
            u2[m],
            u2[m + 1],
            u2[m + 2],
            u2[m + 3],
            u2[m + 4],
            u2[m + 5],
            u2[m + 6],
            u2[m + 7],
        )
        d0, d1, d2, d3, d4, d5, d6, d7 = (
            u3[m],
            u3[m + 1],
            u3[m + 2],
            u3[m + 3],
            u3[m + 4],
            u3[m + 5],
            u3[m + 6],
            u3[m + 7],
        )
        if m == 0:
            for k in range(K):
                x0, x1, x2, x3, x4, x5, x6, x7 = h0[k], h1[k], h2[k], h3[k], h4[k], h5[k], h6[k], h7[k]
                v0[k] = ((a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3)) + (
                    (a4 * x4 + a5 * x5) + (a6 * x6 + a7 * x7)
                )
                v1[k] = ((b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3)) + (
                    (b4 * x4 + b5 * x5) + (b6 * x6 + b7 * x7)
                )
                v2[k] = ((c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3)) + (
                    (c4 * x4 + c5 * x5) + (c6 * x6 + c7 * x7)
                )
                v3[k] = ((d0 * x0 + d1 * x1) + (d2 * x2 + d3 * x3)) + (
                    (d4 * x4 + d5 * x5) + (d6 * x6 + d7 * x7)
                )
        else:
            for k in range(K):
                x0, x1, x2, x3, x4, x5, x6, x7 = h0[k], h1[k], h2[k], h3[k], h4[k], h5[k], h6[k], h7[k]
                v0[k] += ((a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3)) + (
                    (a4 * x4 + a5 * x5) + (a6 * x6 + a7 * x7)
                )
                v1[k] += ((b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3)) + (
                    (b4 * x4 + b5 * x5) + (b6 * x6 + b7 * x7)
                )
                v2[k] += ((c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3)) + (
                    (c4 * x4 + c5 * x5) + (c6 * x6 + c7 * x7)
                )
                v3[k] += ((d0 * x0 + d1 * x1) + (d2 * x2 + d3 * x3)) + (
                    (d4 * x4 + d5 * x5) + (d6 * x6 + d7 * x7)
                )
        m += 8
    if m + 4 <= M:
        h0, h1, h2, h3 = bases_t[m], bases_t[m + 1], bases_t[m + 2], bases_t[m + 3]
        a0, a1, a2, a3 = u0[m], u0[m + 1], u0[m + 2], u0[m + 3]
        b0, b1, b2, b3 = u1[m], u1[m + 1], u1[m + 2], u1[m + 3]
        c0, c1, c2, c3 = u2[m], u2[m + 1], u2[m + 2], u2[m + 3]
        d0, d1, d2, d3 = u3[m], u3[m + 1], u3[m + 2], u3[m + 3]
        if m == 0:
            for k in range(K):
                x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
                v0[k] = (a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3)
                v1[k] = (b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3)
                v2[k] = (c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3)
                v3[k] = (d0 * x0 + d1 * x1) + (d2 * x2 + d3 * x3)
        else:
            for k in range(K):
                x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
                v0[k] += (a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3)
                v1[k] += (b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3)
                v2[k] += (c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3)
                v3[k] += (d0 * x0 + d1 * x1) + (d2 * x2 + d3 * x3)
        m += 4
    while m < M:
        h0 = bases_t[m]
        a0, b0, c0, d0 = u0[m], u1[m], u2[m], u3[m]
        if m == 0:
            for k in range(K):
                x0 = h0[k]
                v0[k] = a0 * x0
                v1[k] = b0 * x0
                v2[k] = c0 * x0
                v3[k] = d0 * x0
        else:
            for k in range(K):
                x0 = h0[k]
                v0[k] += a0 * x0
                v1[k] += b0 * x0
                v2[k] += c0 * x0
                v3[k] += d0 * x0
        m += 1


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _project(bases_t, source, out):
    """out[m] = sum_k bases_t[m, k] source[k]."""
    for m in range(bases_t.shape[0]):
        h = bases_t[m]
        total = np.float32(0.0)
        for k in range(source.shape[0]):
            total += h[k] * source[k]
        out[m] = total


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _project4(bases_t, sources, out):
    """out[j, m] = sum_k bases_t[m, k] sources[j, k] for four frames j, four basis rows per sweep
    (sixteen sums in registers)."""
    s0, s1, s2, s3 = sources[0], sources[1], sources[2], sources[3]
    M = bases_t.shape[0]
    zero = sources.dtype.type(0.0)
    m = 0
    while m + 4 <= M:
        h0, h1, h2, h3 = bases_t[m], bases_t[m + 1], bases_t[m + 2], bases_t[m + 3]
        t00 = t01 = t02 = t03 = t10 = t11 = t12 = t13 = zero
        t20 = t21 = t22 = t23 = t30 = t31 = t32 = t33 = zero
        for k in range(h0.shape[0]):
            x0, x1, x2, x3 = s0[k], s1[k], s2[k], s3[k]
            w = h0[k]
            t00 += w * x0
            t01 += w * x1
            t02 += w * x2
            t03 += w * x3
            w = h1[k]
            t10 += w * x0
            t11 += w * x1
            t12 += w * x2
            t13 += w * x3
            w = h2[k]
            t20 += w * x0
            t21 += w * x1
            t22 += w * x2
            t23 += w * x3
            w = h3[k]
            t30 += w * x0
            t31 += w * x1
            t32 += w * x2
            t33 += w * x3
        out[0, m], out[1, m], out[2, m], out[3, m] = t00, t01, t02, t03
        out[0, m + 1], out[1, m + 1], out[2, m + 1], out[3, m + 1] = t10, t11, t12, t13
        out[0, m + 2], out[1, m + 2], out[2, m + 2], out[3, m + 2] = t20, t21, t22, t23
        out[0, m + 3], out[1, m + 3], out[2, m + 3], out[3, m + 3] = t30, t31, t32, t33
        m += 4
    while m < M:
        h0 = bases_t[m]
        t00 = t01 = t02 = t03 = zero
        for k in range(h0.shape[0]):
            w = h0[k]
            t00 += w * s0[k]
            t01 += w * s1[k]
            t02 += w * s2[k]
            t03 += w * s3[k]
        out[0, m], out[1, m], out[2, m], out[3, m] = t00, t01, t02, t03
        m += 1


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _accumulate(sums, activation, first_row, source):
    """sums[f, k] += activation[first_row + f] * source[k]."""
    for f in range(sums.shape[0]):
        weight = activation[first_row + f]
        row = sums[f]
        for k in range(source.shape[0]):
            row[k] += weight * source[k]


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _accumulate4(sums, activations, first_row, sources):
    """sums[f, k] += sum_j activations[j, first_row + f] * sources[j, k] for four frames j.

    Two accumulator rows per sweep: each source value is loaded once for both.
    """
    s0, s1, s2, s3 = sources[0], sources[1], sources[2], sources[3]
    F = sums.shape[0]
    f = 0
    while f + 2 <= F:
        m = first_row + f
        w0, w1, w2, w3 = activations[0, m], activations[1, m], activations[2, m], activations[3, m]
        v0, v1, v2, v3 = (
            activations[0, m + 1],
            activations[1, m + 1],
            activations[2, m + 1],
            activations[3, m + 1],
        )
        row, next_row = sums[f], sums[f + 1]
        for k in range(row.shape[0]):
            x0 = s0[k]
            x1 = s1[k]
            x2 = s2[k]
            x3 = s3[k]
            row[k] += (w0 * x0 + w1 * x1) + (w2 * x2 + w3 * x3)
            next_row[k] += (v0 * x0 + v1 * x1) + (v2 * x2 + v3 * x3)
        f += 2
    if f < F:
        m = first_row + f
        w0, w1, w2, w3 = activations[0, m], activations[1, m], activations[2, m], activations[3, m]
        row = sums[f]
        for k in range(row.shape[0]):
            row[k] += (w0 * s0[k] + w1 * s1[k]) + (w2 * s2[k] + w3 * s3[k])


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _sum_log(values, weights, mantissa_bits):
    """sum(weights * log(values)) over positive finite values, in float64.

    A scalar ``math.log`` per entry costs more than the whole update (it does not vectorise), so
    float32 values use Cephes' logf: exponent and mantissa from the bits, a degree-9 polynomial in
    the mantissa (accurate to about one float32 ulp) -- all vectorisable. float64 uses math.log.
    """
    total = 0.0
    K = values.shape[0]
    if values.itemsize != 4:
        for k in range(K):
            total += weights[k] * math.log(values[k])
        return total
    bits = values.view(np.int32)
    for k in range(K):
        mantissa_bits[k] = (bits[k] & 0x7FFFFF) | 0x3F000000  # same mantissa, in [0.5, 1)
    mantissa = mantissa_bits.view(np.float32)
    for k in range(K):
        # values below float32's normal range (never reached: data and models are floored) would
        # need a denormal branch; the exponent field of a denormal is 0.
        exponent = np.float32(((bits[k] >> 23) & 0xFF) - 126)
        x = mantissa[k]
        if x < np.float32(0.70710677):
            exponent -= np.float32(1.0)
            x = x + x - np.float32(1.0)
        else:
            x = x - np.float32(1.0)
        z = x * x
        y = (
            (
                (
                    (
                        (
                            (
                                (
                                    (
                                        (np.float32(7.0376836292e-2) * x - np.float32(1.1514610310e-1)) * x
                                        + np.float32(1.1676998740e-1)
                                    )
                                    * x
                                    - np.float32(1.2420140846e-1)
                                )
                                * x
                                + np.float32(1.4249322787e-1)
                            )
                            * x
                            - np.float32(1.6668057665e-1)
                        )
                        * x
                        + np.float32(2.0000714765e-1)
                    )
                    * x
                    - np.float32(2.4999993993e-1)
                )
                * x
                + np.float32(3.3333331174e-1)
            )
            * x
            * z
        )
        y += np.float32(-2.12194440e-4) * exponent - np.float32(0.5) * z
        log_value = x + y + np.float32(0.693359375) * exponent
        total += weights[k] * log_value
    return total


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _sum_log_unweighted(values, mantissa_bits):
    """sum(log(values)) over positive finite values, in float64, with one log per 512 values.

    log(prod x) = sum(exponents) * log(2) + log(prod mantissas): the exponents are summed as
    integers and the mantissas (in [1, 2)) multiplied in float64, which cannot overflow for 512
    of them. Exact to float64 rounding, and several times cheaper than a log per entry.
    """
    total = 0.0
    K = values.shape[0]
    if values.itemsize != 4:
        for k in range(K):
            total += math.log(values[k])
        return total
    bits = values.view(np.int32)
    exponents = 0
    for k in range(K):
        exponents += ((bits[k] >> 23) & 0xFF) - 127
        mantissa_bits[k] = (bits[k] & 0x7FFFFF) | 0x3F800000
    mantissa = mantissa_bits.view(np.float32)
    for start in range(0, K, 512):
        product = 1.0
        for k in range(start, min(start + 512, K)):
            product *= np.float64(mantissa[k])
        total += math.log(product)
    return total + exponents * math.log(2.0)


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy", inline="always")
def _terms(kind, beta, tiny, y, model, a, b, want_objective, scratch):
    """Fill a (and b) from one frame; return the frame's objective terms (see :func:`activation_terms`)."""
    first = 0.0
    second = 0.0
    K = y.shape[0]
    if kind == KL:
        for k in range(K):
            a[k] = y[k] / model[k]
        if want_objective:
            first = _sum_log(a, y, scratch)
    elif kind == IS:
        one = y.dtype.type(1.0)  # a float64 1.0 would divide in float64
        if want_objective:
            for k in range(K):
                b[k] = one / model[k]
                a[k] = y[k] * b[k]
            for k in range(K):
                first += a[k]
            second = _sum_log_unweighted(a, scratch)
            for k in range(K):
                a[k] *= b[k]
        else:
            for k in range(K):
                inverse = one / model[k]
                b[k] = inverse
                a[k] = (y[k] * inverse) * inverse
    else:
        for k in range(K):
            value = max(model[k], tiny)
            b[k] = value ** (beta - 1.0)
            a[k] = y[k] * b[k] / value
        if want_objective:
            for k in range(K):
                value = max(model[k], tiny)
                first += value * b[k]
                second += y[k] * b[k]
    return first, second


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy", inline="always")
def _finish_terms4(kind, model, bases_t, activations, ys, a, b):
    """The IS or KL terms of four frames (rows of ``ys``) in the sweep that adds the last four bases
    to their model (``model`` holds the sum over the others): the model is not stored and read back.
    """
    K, M = model.shape[1], bases_t.shape[0]
    m = M - 4
    v0, v1, v2, v3 = model[0], model[1], model[2], model[3]
    y0, y1, y2, y3 = ys[0], ys[1], ys[2], ys[3]
    a0, a1, a2, a3 = a[0], a[1], a[2], a[3]
    h0, h1, h2, h3 = bases_t[m], bases_t[m + 1], bases_t[m + 2], bases_t[m + 3]
    u0, u1, u2, u3 = activations[0], activations[1], activations[2], activations[3]
    p0, p1, p2, p3 = u0[m], u0[m + 1], u0[m + 2], u0[m + 3]
    q0, q1, q2, q3 = u1[m], u1[m + 1], u1[m + 2], u1[m + 3]
    r0, r1, r2, r3 = u2[m], u2[m + 1], u2[m + 2], u2[m + 3]
    s0, s1, s2, s3 = u3[m], u3[m + 1], u3[m + 2], u3[m + 3]
    one = model.dtype.type(1.0)
    if kind == KL:
        for k in range(K):
            x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
            a0[k] = y0[k] / (v0[k] + ((p0 * x0 + p1 * x1) + (p2 * x2 + p3 * x3)))
            a1[k] = y1[k] / (v1[k] + ((q0 * x0 + q1 * x1) + (q2 * x2 + q3 * x3)))
            a2[k] = y2[k] / (v2[k] + ((r0 * x0 + r1 * x1) + (r2 * x2 + r3 * x3)))
            a3[k] = y3[k] / (v3[k] + ((s0 * x0 + s1 * x1) + (s2 * x2 + s3 * x3)))
    else:
        b0, b1, b2, b3 = b[0], b[1], b[2], b[3]
        for k in range(K):
            x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
            i0 = one / (v0[k] + ((p0 * x0 + p1 * x1) + (p2 * x2 + p3 * x3)))
            i1 = one / (v1[k] + ((q0 * x0 + q1 * x1) + (q2 * x2 + q3 * x3)))
            i2 = one / (v2[k] + ((r0 * x0 + r1 * x1) + (r2 * x2 + r3 * x3)))
            i3 = one / (v3[k] + ((s0 * x0 + s1 * x1) + (s2 * x2 + s3 * x3)))
            b0[k] = i0
            b1[k] = i1
            b2[k] = i2
            b3[k] = i3
            a0[k] = (y0[k] * i0) * i0
            a1[k] = (y1[k] * i1) * i1
            a2[k] = (y2[k] * i2) * i2
            a3[k] = (y3[k] * i3) * i3


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy", parallel=True)
def activation_terms(data, bases_t, acts_t, kind, beta, tiny, numerator, denominator, want_objective, sums):
    """Projections for the U update: numerator[n] = H^T a(y_n, v_n), denominator[n] = H^T b(v_n).

    Parameters
    ----------
    data : np.ndarray [shape=(N, K)]
    bases_t : np.ndarray [shape=(M, K)]
    acts_t : np.ndarray [shape=(N, M)]
    kind : int
        IS, KL or GENERAL (EUC has kernels of its own, below).
    numerator, denominator : np.ndarray [shape=(N, M)]
        Written (denominator only for IS and GENERAL).
    sums : np.ndarray [shape=(n_chunks, 2), dtype=float64]
        Per chunk objective sums when ``want_objective`` (KL: sum y log(y/v); IS: sum y/v and
        sum log(y/v); GENERAL: sum v^beta and sum y v^(beta-1)).
    """
    N, K = data.shape
    M = bases_t.shape[0]
    n_chunks = sums.shape[0]
    two_terms = kind == IS or kind == GENERAL
    # IS and KL terms in the model's last sweep (the objective needs y / v: the staged path)
    fuse = (kind == IS or kind == KL) and M >= 8 and not want_objective
    for chunk in nb.prange(n_chunks):
        # Four frames at a time: the projections read each basis once for all four.
        model = np.empty((4, K), dtype=data.dtype)
        a = np.empty((4, K), dtype=data.dtype)
        b = np.empty((4, K), dtype=data.dtype)
        scratch = np.empty(K, dtype=np.int32)
        first = 0.0
        second = 0.0
        start, stop = chunk * N // n_chunks, (chunk + 1) * N // n_chunks
        for group in range(start, stop, 4):
            count = min(4, stop - group)
            if count == 4 and fuse:
                _model4(model, bases_t, acts_t[group : group + 4], M - 4)
                _finish_terms4(kind, model, bases_t, acts_t[group : group + 4], data[group : group + 4], a, b)
            else:
                if count == 4:
                    _model4(model, bases_t, acts_t[group : group + 4], M)
                for j in range(count):
                    y = data[group + j]
                    if count < 4:
                        _model(model[j], bases_t, acts_t[group + j])
                    f, s = _terms(kind, beta, tiny, y, model[j], a[j], b[j], want_objective, scratch)
                    first += f
                    second += s
            if count == 4:
                _project4(bases_t, a, numerator[group : group + 4])
                if two_terms:
                    _project4(bases_t, b, denominator[group : group + 4])
            else:
                for j in range(count):
                    _project(bases_t, a[j], numerator[group + j])
                    if two_terms:
                        _project(bases_t, b[j], denominator[group + j])
        sums[chunk, 0] = first
        sums[chunk, 1] = second


@nb.njit(cache=True, fastmath=_FAST, error_model="numpy", parallel=True)
def basis_terms(data, bases_t, acts_t, kind, beta, tiny, first_row, numerators, denominators):
    """Per chunk sums for the H update: numerators[c, f] = sum_n u_(first_row + f, n) a(y_n, v_n).

    ``numerators`` and ``denominators`` have shape (n_chunks, F, K) for the F rows of H^T from
    ``first_row`` on (the free bases); denominators only for IS and GENERAL. Sum them over the
    first axis, in order, for the projections.
    """
    N, K = data.shape
    M = bases_t.shape[0]
    n_chunks = numerators.shape[0]
    two_terms = kind == IS or kind == GENERAL
    fuse = (kind == IS or kind == KL) and M >= 8  # IS and KL terms in the model's last sweep
    for chunk in nb.prange(n_chunks):
        # Four frames at a time: each accumulator row is read and written once for all four.
        model = np.empty((4, K), dtype=data.dtype)
        a = np.empty((4, K), dtype=data.dtype)
        b = np.empty((4, K), dtype=data.dtype)
        scratch = np.empty(K, dtype=np.int32)
        numerator = numerators[chunk]
        numerator[:] = 0
        denominator = denominators[chunk]
        if two_terms:
            denominator[:] = 0
        start, stop = chunk * N // n_chunks, (chunk + 1) * N // n_chunks
        for group in range(start, stop, 4):
            count = min(4, stop - group)
            if count == 4 and fuse:
                _model4(model, bases_t, acts_t[group : group + 4], M - 4)
                _finish_terms4(kind, model, bases_t, acts_t[group : group + 4], data[group : group + 4], a, b)
            else:
                if count == 4:
                    _model4(model, bases_t, acts_t[group : group + 4], M)
                for j in range(count):
                    if count < 4:
                        _model(model[j], bases_t, acts_t[group + j])
                    _terms(kind, beta, tiny, data[group + j], model[j], a[j], b[j], False, scratch)
            if count == 4:
                _accumulate4(numerator, acts_t[group : group + 4], first_row, a)
                if two_terms:
                    _accumulate4(denominator, acts_t[group : group + 4], first_row, b)
            else:
                for j in range(count):
                    _accumulate(numerator, acts_t[group + j], first_row, a[j])
                    if two_terms:
                        _accumulate(denominator, acts_t[group + j], first_row, b[j])


@nb.njit(cache=True, fastmath=_FAST, parallel=True)
def euclidean_terms(data, bases_t, acts_t, numerator, sums):
    """EUC U-update numerators H^T y_n in float64, and per chunk sums of u_n . (H^T y_n).

    The Euclidean objective is 2 D = ||Y||^2 - 2 <U, H^T Y> + <H^T H, U U^T>: with these sums it
    needs no model. Accumulating in float64 (float32 products are exact there) keeps the
    difference of nearly equal terms accurate when the fit is close.
    """
    N, K = data.shape
    M = bases_t.shape[0]
    n_chunks = sums.shape[0]
    for chunk in nb.prange(n_chunks):
        cross = 0.0
        for n in range(chunk * N // n_chunks, (chunk + 1) * N // n_chunks):
            y = data[n]
            for m in range(M):
                h = bases_t[m]
                total = 0.0
                for k in range(K):
                    total += np.float64(h[k]) * np.float64(y[k])
                numerator[n, m] = total
                cross += total * acts_t[n, m]
        sums[chunk] = cross


# ------------------------------------------------------------------------------------------------
# Ranks up to 4: the whole update of a frame in one sweep over k, with every partial sum in a
# register. The general kernels above stage the model and terms of four frames in K-long buffers
# and sweep them several times; with at most four bases nothing needs staging (measured at
# K=1025, N=7752, KL: 1.4 vs 2.5 ms for the U pass, 1.6 vs 2.9 ms for the H pass). Fewer bases are
# padded with zero rows (``bases4`` is 4 x K): their model contribution is zero and their sums are
# dropped.


@nb.njit(cache=True, inline="always")
def _activations4(acts_t, n):
    """Frame n's activations, padded with zeros to four."""
    M = acts_t.shape[1]
    zero = acts_t.dtype.type(0.0)
    return (
        acts_t[n, 0],
        acts_t[n, 1] if M > 1 else zero,
        acts_t[n, 2] if M > 2 else zero,
        acts_t[n, 3] if M > 3 else zero,
    )


@nb.njit(cache=True, inline="always")
def _store4(out, n, values):
    """out[n, :M] = the first M of four sums."""
    s0, s1, s2, s3 = values
    M = out.shape[1]
    out[n, 0] = s0
    if M > 1:
        out[n, 1] = s1
    if M > 2:
        out[n, 2] = s2
    if M > 3:
        out[n, 3] = s3


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _kl_one4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio, keep):
    """KL U-update numerator of frame n, H^T (y / v); the ratios y / v into ``ratio`` if ``keep``."""
    y = data[n]
    u0, u1, u2, u3 = _activations4(acts_t, n)
    s0 = s1 = s2 = s3 = y.dtype.type(0.0)
    for k in range(y.shape[0]):
        x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
        r = y[k] / ((u0 * x0 + u1 * x1) + (u2 * x2 + u3 * x3))
        if keep:
            ratio[k] = r
        s0 += r * x0
        s1 += r * x1
        s2 += r * x2
        s3 += r * x3
    _store4(numerator, n, (s0, s1, s2, s3))


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _is_one4(data, acts_t, n, h0, h1, h2, h3, numerator, denominator, ratio, keep):
    """IS U-update numerator H^T (y / v^2) and denominator H^T (1 / v) of frame n; the ratios
    y / v into ``ratio`` if ``keep``."""
    y = data[n]
    u0, u1, u2, u3 = _activations4(acts_t, n)
    a0 = a1 = a2 = a3 = y.dtype.type(0.0)
    b0 = b1 = b2 = b3 = y.dtype.type(0.0)
    one = y.dtype.type(1.0)
    for k in range(y.shape[0]):
        x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
        inverse = one / ((u0 * x0 + u1 * x1) + (u2 * x2 + u3 * x3))
        r = y[k] * inverse
        if keep:
            ratio[k] = r
        a = r * inverse
        a0 += a * x0
        a1 += a * x1
        a2 += a * x2
        a3 += a * x3
        b0 += inverse * x0
        b1 += inverse * x1
        b2 += inverse * x2
        b3 += inverse * x3
    _store4(numerator, n, (a0, a1, a2, a3))
    _store4(denominator, n, (b0, b1, b2, b3))


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _kl_four4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio, keep):
    """KL U-update numerators of frames n..n+3 in one sweep (each basis value loaded once for all
    four); the ratios y / v into ``ratio`` if ``keep`` (a literal: one loop per case)."""
    ya, yb, yc, yd = data[n], data[n + 1], data[n + 2], data[n + 3]
    a = _activations4(acts_t, n)
    b = _activations4(acts_t, n + 1)
    c = _activations4(acts_t, n + 2)
    d = _activations4(acts_t, n + 3)
    a0, a1, a2, a3 = a
    b0, b1, b2, b3 = b
    c0, c1, c2, c3 = c
    d0, d1, d2, d3 = d
    zero = ya.dtype.type(0.0)
    sa0 = sa1 = sa2 = sa3 = sb0 = sb1 = sb2 = sb3 = zero
    sc0 = sc1 = sc2 = sc3 = sd0 = sd1 = sd2 = sd3 = zero
    ra_, rb_, rc_, rd_ = ratio[0], ratio[1], ratio[2], ratio[3]
    for k in range(ya.shape[0]):
        x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
        ra = ya[k] / ((a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3))
        rb = yb[k] / ((b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3))
        rc = yc[k] / ((c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3))
        rd = yd[k] / ((d0 * x0 + d1 * x1) + (d2 * x2 + d3 * x3))
        if keep:
            ra_[k] = ra
            rb_[k] = rb
            rc_[k] = rc
            rd_[k] = rd
        sa0 += ra * x0
        sa1 += ra * x1
        sa2 += ra * x2
        sa3 += ra * x3
        sb0 += rb * x0
        sb1 += rb * x1
        sb2 += rb * x2
        sb3 += rb * x3
        sc0 += rc * x0
        sc1 += rc * x1
        sc2 += rc * x2
        sc3 += rc * x3
        sd0 += rd * x0
        sd1 += rd * x1
        sd2 += rd * x2
        sd3 += rd * x3
    _store4(numerator, n, (sa0, sa1, sa2, sa3))
    _store4(numerator, n + 1, (sb0, sb1, sb2, sb3))
    _store4(numerator, n + 2, (sc0, sc1, sc2, sc3))
    _store4(numerator, n + 3, (sd0, sd1, sd2, sd3))


@nb.njit(cache=True, fastmath=_FAST, parallel=True)
def activation_terms4(data, bases4, acts_t, kind, numerator, denominator, want_objective, sums):
    """:func:`activation_terms` for KL and IS at ranks up to 4 (``bases4``: H^T padded to 4 x K)."""
    N, K = data.shape
    n_chunks = sums.shape[0]
    h0, h1, h2, h3 = bases4[0], bases4[1], bases4[2], bases4[3]
    for chunk in nb.prange(n_chunks):
        ratio = np.empty((4, K), dtype=data.dtype)
        scratch = np.empty(K, dtype=np.int32)
        first = 0.0
        second = 0.0
        start, stop = chunk * N // n_chunks, (chunk + 1) * N // n_chunks
        n = start
        while n < stop:
            if kind == KL and n + 4 <= stop:
                # four frames per sweep: each basis value is loaded once for all four
                if want_objective:
                    _kl_four4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio, True)
                else:
                    _kl_four4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio, False)
                if want_objective:
                    for j in range(4):
                        first += _sum_log(ratio[j], data[n + j], scratch)
                n += 4
            elif kind == KL:
                if want_objective:
                    _kl_one4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio[0], True)
                    first += _sum_log(ratio[0], data[n], scratch)
                else:
                    _kl_one4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio[0], False)
                n += 1
            else:
                if want_objective:
                    _is_one4(data, acts_t, n, h0, h1, h2, h3, numerator, denominator, ratio[0], True)
                else:
                    _is_one4(data, acts_t, n, h0, h1, h2, h3, numerator, denominator, ratio[0], False)
                if want_objective:
                    total = 0.0
                    for k in range(K):
                        total += ratio[0, k]
                    first += total
                    second += _sum_log_unweighted(ratio[0], scratch)
                n += 1
        sums[chunk, 0] = first
        sums[chunk, 1] = second


@nb.njit(cache=True, fastmath=_FAST, parallel=True)
def basis_terms4(data, bases4, acts_t, kind, numerators, denominators):
    """:func:`basis_terms` for KL and IS at ranks up to 4: per chunk sums into ``numerators`` (and
    ``denominators`` for IS), of shape (n_chunks, 4, K), every row (sum them over the first axis
    and keep the rows of the free bases)."""
    N = data.shape[0]
    n_chunks = numerators.shape[0]
    h0, h1, h2, h3 = bases4[0], bases4[1], bases4[2], bases4[3]
    for chunk in nb.prange(n_chunks):
        p = numerators[chunk]
        p[:] = 0
        q = denominators[chunk]
        if kind == IS:
            q[:] = 0
        start, stop = chunk * N // n_chunks, (chunk + 1) * N // n_chunks
        n = start
        while n < stop:
            if n + 4 <= stop:
                # four frames per sweep: each accumulator row is read and written once for all four
                _bases_four4(data, acts_t, n, h0, h1, h2, h3, p, q, kind)
                n += 4
            else:
                _bases_one4(data, acts_t, n, h0, h1, h2, h3, p, q, kind)
                n += 1


# ------------------------------------------------------------------------------------------------
# A whole iteration in one pass over the data (KL and IS, ranks up to 4). At long inputs the two
# passes above are memory-bound: each reads all of Y (1.27 GB for an hour of audio). Here, per
# group of four frames, sweep 1 computes the U update's sums with the current activations (the
# arithmetic of activation_terms4), the U update is applied to those frames, and sweep 2, the frames
# still in cache, adds them to the H update's sums with the new activations (that of basis_terms4):
# the same algorithm (U first with the old H, then H with the new U and old H), the same iterates.


def _strict(operation: str):
    """A float binary operation (``"fadd"``, ``"fsub"``, ``"fmul"``, ``"fdiv"``) that fastmath
    leaves alone: rounded as written, as numpy rounds it.

    numba's fastmath flags go on every float instruction that has none, callees included (a
    function first compiled from a fastmath caller inherits its flags): with ``reassoc``, LLVM
    turns ``u * (p / q)`` into ``(u * p) / q``. This one carries ``nsz`` alone (no signed zeros,
    harmless for these positive values), so it is neither reassociated nor contracted.
    """

    @intrinsic
    def strict(typingctx, a, b):
        if not (isinstance(a, types.Float) and a == b):
            return None

        def codegen(context, builder, signature, args):
            return getattr(builder, operation)(args[0], args[1], flags=("nsz",))

        return a(a, b), codegen

    return strict


_add, _sub, _mul, _div = (_strict(operation) for operation in ("fadd", "fsub", "fmul", "fdiv"))


@nb.njit(cache=True)
def _update4(acts_t, n, numerator, denominator, column4, kind, tiny, want_decrease):
    """The U update of frame n in place (ranks up to 4), as ``MMWorkspace._apply``; returns its
    share of the majorizer's drop (0.0 unless ``want_decrease``).

    The denominator is ``column4[m]`` for KL (H^T 1, penalty included, from the caller) and
    ``denominator[n, m] + column4[m]`` for IS (the penalty, or 0). Every operation on the factors
    is strict (see :func:`_strict`) and in numpy's order, so the iterates are numpy's bit for bit.
    """
    one = acts_t.dtype.type(1.0)
    floor = acts_t.dtype.type(tiny)
    zero = acts_t.dtype.type(0.0)
    drop = 0.0
    for m in range(acts_t.shape[1]):
        q = column4[m] if kind == KL else _add(denominator[n, m], column4[m])
        # np.maximum(x, tiny): NaN stays NaN
        if q < floor:
            q = floor
        p = numerator[n, m]
        if p < floor:
            p = floor
        r = _div(p, q)
        if kind == IS:
            r = np.sqrt(r)  # gamma = 1/2 (numpy's float32 power of 1/2 is sqrt, bit for bit)
        u = acts_t[n, m]
        if want_decrease:  # u q phi(r), phi of majorizer_decrease, in its order of operations
            phi = _sub(r, one)
            if kind == KL:
                cubic = _sub(acts_t.dtype.type(3.0), phi)
                phi = _mul(phi, phi)
                phi = _mul(phi, cubic)
                phi = _mul(phi, acts_t.dtype.type(1.0 / 6.0))
                if phi < zero:
                    phi = zero
                phi = _mul(phi, u)
                drop += np.float64(phi) * np.float64(q)
            else:
                phi = _mul(phi, phi)
                phi = _mul(phi, u)
                phi = _mul(phi, q)
                drop += np.float64(phi)
        acts_t[n, m] = _mul(u, r)
    return drop


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _bases_four4(data, acts_t, n, h0, h1, h2, h3, p, q, kind):
    """The H update's sums of frames n..n+3 into the rows of ``p`` (and ``q`` for IS), with their
    activations as stored (for :func:`basis_terms4` and :func:`iteration_terms4`)."""
    p0, p1, p2, p3 = p[0], p[1], p[2], p[3]
    q0, q1, q2, q3 = q[0], q[1], q[2], q[3]
    one = data.dtype.type(1.0)
    K = data.shape[1]
    ya, yb, yc, yd = data[n], data[n + 1], data[n + 2], data[n + 3]
    a0, a1, a2, a3 = _activations4(acts_t, n)
    b0, b1, b2, b3 = _activations4(acts_t, n + 1)
    c0, c1, c2, c3 = _activations4(acts_t, n + 2)
    d0, d1, d2, d3 = _activations4(acts_t, n + 3)
    if kind == KL:
        for k in range(K):
            x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
            ra = ya[k] / ((a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3))
            rb = yb[k] / ((b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3))
            rc = yc[k] / ((c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3))
            rd = yd[k] / ((d0 * x0 + d1 * x1) + (d2 * x2 + d3 * x3))
            p0[k] += (ra * a0 + rb * b0) + (rc * c0 + rd * d0)
            p1[k] += (ra * a1 + rb * b1) + (rc * c1 + rd * d1)
            p2[k] += (ra * a2 + rb * b2) + (rc * c2 + rd * d2)
            p3[k] += (ra * a3 + rb * b3) + (rc * c3 + rd * d3)
    else:
        for k in range(K):
            x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
            ia = one / ((a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3))
            ib = one / ((b0 * x0 + b1 * x1) + (b2 * x2 + b3 * x3))
            ic = one / ((c0 * x0 + c1 * x1) + (c2 * x2 + c3 * x3))
            id_ = one / ((d0 * x0 + d1 * x1) + (d2 * x2 + d3 * x3))
            ra = ya[k] * ia * ia
            rb = yb[k] * ib * ib
            rc = yc[k] * ic * ic
            rd = yd[k] * id_ * id_
            p0[k] += (ra * a0 + rb * b0) + (rc * c0 + rd * d0)
            p1[k] += (ra * a1 + rb * b1) + (rc * c1 + rd * d1)
            p2[k] += (ra * a2 + rb * b2) + (rc * c2 + rd * d2)
            p3[k] += (ra * a3 + rb * b3) + (rc * c3 + rd * d3)
            q0[k] += (ia * a0 + ib * b0) + (ic * c0 + id_ * d0)
            q1[k] += (ia * a1 + ib * b1) + (ic * c1 + id_ * d1)
            q2[k] += (ia * a2 + ib * b2) + (ic * c2 + id_ * d2)
            q3[k] += (ia * a3 + ib * b3) + (ic * c3 + id_ * d3)


@nb.njit(cache=True, fastmath=_FAST, inline="always")
def _bases_one4(data, acts_t, n, h0, h1, h2, h3, p, q, kind):
    """The H update's sums of frame n alone (the last frames of a chunk), as :func:`_bases_four4`."""
    p0, p1, p2, p3 = p[0], p[1], p[2], p[3]
    q0, q1, q2, q3 = q[0], q[1], q[2], q[3]
    one = data.dtype.type(1.0)
    y = data[n]
    a0, a1, a2, a3 = _activations4(acts_t, n)
    for k in range(data.shape[1]):
        x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
        inverse = one / ((a0 * x0 + a1 * x1) + (a2 * x2 + a3 * x3))
        r = y[k] * inverse
        if kind == IS:
            r *= inverse
            q0[k] += inverse * a0
            q1[k] += inverse * a1
            q2[k] += inverse * a2
            q3[k] += inverse * a3
        p0[k] += r * a0
        p1[k] += r * a1
        p2[k] += r * a2
        p3[k] += r * a3


@nb.njit(cache=True, fastmath=_FAST, parallel=True)
def iteration_terms4(
    data,
    bases4,
    acts_t,
    kind,
    column4,
    tiny,
    numerator,
    denominator,
    numerators,
    denominators,
    want_objective,
    want_decrease,
    sums,
):
    """One pass over the data for a whole iteration (KL and IS, ranks up to 4): the U update in
    place, and the H update's sums with the new activations.

    For each group of four frames: their U-update sums as :func:`activation_terms4` (into
    ``numerator`` and, for IS, ``denominator``: of shape (N, M)), their U update as
    ``MMWorkspace._apply`` (see :func:`_update4`), then their share of the H update's sums as
    :func:`basis_terms4` (into ``numerators`` and, for IS, ``denominators``: per chunk, of shape
    (n_chunks, 4, K); sum them over the first axis and keep the rows of the free bases).

    Parameters
    ----------
    data : np.ndarray [shape=(N, K)]
    bases4 : np.ndarray [shape=(4, K)]
        H^T padded with zero rows to four.
    acts_t : np.ndarray [shape=(N, M)]
        U^T, M <= 4: updated in place.
    kind : int
        IS or KL.
    column4 : np.ndarray [shape=(4,)]
        Per basis part of the U update's denominator (first M entries): KL, H^T 1 plus the
        sparsity penalty; IS, the penalty (zeros without one).
    tiny : float
        The floor of numerators and denominators (the dtype's smallest normal number).
    sums : np.ndarray [shape=(n_chunks, 3), dtype=float64]
        Per chunk: the objective sums of (H, U) before the update as :func:`activation_terms4`
        when ``want_objective`` (KL: sum y log(y/v); IS: sum y/v and sum log(y/v)), and the U
        update's majorizer drop when ``want_decrease`` (see :func:`.divergence.majorizer_decrease`).
    """
    N, K = data.shape
    n_chunks = sums.shape[0]
    h0, h1, h2, h3 = bases4[0], bases4[1], bases4[2], bases4[3]
    for chunk in nb.prange(n_chunks):
        ratio = np.empty((4, K), dtype=data.dtype)
        scratch = np.empty(K, dtype=np.int32)
        p = numerators[chunk]
        p[:] = 0
        q = denominators[chunk]
        if kind == IS:
            q[:] = 0
        first = 0.0
        second = 0.0
        drop = 0.0
        start, stop = chunk * N // n_chunks, (chunk + 1) * N // n_chunks
        n = start
        while n < stop:
            count = 4 if n + 4 <= stop else 1
            # sweep 1: the U update's sums (and the objective's) with the current activations
            if kind == KL and count == 4:
                if want_objective:
                    _kl_four4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio, True)
                    for j in range(4):
                        first += _sum_log(ratio[j], data[n + j], scratch)
                else:
                    _kl_four4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio, False)
            elif kind == KL:
                if want_objective:
                    _kl_one4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio[0], True)
                    first += _sum_log(ratio[0], data[n], scratch)
                else:
                    _kl_one4(data, acts_t, n, h0, h1, h2, h3, numerator, ratio[0], False)
            else:
                for j in range(count):
                    if want_objective:
                        _is_one4(data, acts_t, n + j, h0, h1, h2, h3, numerator, denominator, ratio[0], True)
                        total = 0.0
                        for k in range(K):
                            total += ratio[0, k]
                        first += total
                        second += _sum_log_unweighted(ratio[0], scratch)
                    else:
                        _is_one4(data, acts_t, n + j, h0, h1, h2, h3, numerator, denominator, ratio[0], False)
            # the U update of these frames
            for j in range(count):
                drop += _update4(acts_t, n + j, numerator, denominator, column4, kind, tiny, want_decrease)
            # sweep 2, the frames still in cache: the H update's sums with the new activations
            if count == 4:
                _bases_four4(data, acts_t, n, h0, h1, h2, h3, p, q, kind)
            else:
                _bases_one4(data, acts_t, n, h0, h1, h2, h3, p, q, kind)
            n += count
        sums[chunk, 0] = first
        sums[chunk, 1] = second
        sums[chunk, 2] = drop


# ------------------------------------------------------------------------------------------------
# Euclidean updates: no elementwise terms, only the projections Y^T H (U update) and U Y^T (H
# update). BLAS runs them at a fraction of its peak at small ranks (an inner or outer dimension of
# M); four frames by four bases in registers read the data once at memory speed.


@nb.njit(cache=True, fastmath=_FAST, parallel=True)
def euclidean_projections(data, bases_t, numerator):
    """numerator[n, m] = sum_k bases_t[m, k] data[n, k]: H^T y_n for every frame.

    Four frames by four bases per sweep (16 sums in registers); a last group of fewer frames or
    bases repeats the last one and stores only the real ones.
    """
    N, K = data.shape
    M = bases_t.shape[0]
    for group in nb.prange((N + 3) // 4):
        n = 4 * group
        ya, yb = data[n], data[min(n + 1, N - 1)]
        yc, yd = data[min(n + 2, N - 1)], data[min(n + 3, N - 1)]
        for m in range(0, M, 4):
            h0, h1 = bases_t[m], bases_t[min(m + 1, M - 1)]
            h2, h3 = bases_t[min(m + 2, M - 1)], bases_t[min(m + 3, M - 1)]
            zero = data.dtype.type(0.0)
            sa0 = sa1 = sa2 = sa3 = sb0 = sb1 = sb2 = sb3 = zero
            sc0 = sc1 = sc2 = sc3 = sd0 = sd1 = sd2 = sd3 = zero
            for k in range(K):
                x0, x1, x2, x3 = h0[k], h1[k], h2[k], h3[k]
                ra, rb, rc, rd = ya[k], yb[k], yc[k], yd[k]
                sa0 += ra * x0
                sa1 += ra * x1
                sa2 += ra * x2
                sa3 += ra * x3
                sb0 += rb * x0
                sb1 += rb * x1
                sb2 += rb * x2
                sb3 += rb * x3
                sc0 += rc * x0
                sc1 += rc * x1
                sc2 += rc * x2
                sc3 += rc * x3
                sd0 += rd * x0
                sd1 += rd * x1
                sd2 += rd * x2
                sd3 += rd * x3
            sums = (
                (sa0, sa1, sa2, sa3),
                (sb0, sb1, sb2, sb3),
                (sc0, sc1, sc2, sc3),
                (sd0, sd1, sd2, sd3),
            )
            for j in range(min(4, N - n)):
                row = sums[j]
                for i in range(min(4, M - m)):
                    numerator[n + j, m + i] = row[i]


@nb.njit(cache=True, fastmath=_FAST, parallel=True)
def euclidean_sums(data, acts_t, first_row, F, numerators):
    """Per chunk sums numerators[c, f, k] = sum_n acts_t[n, first_row + f] data[n, k] (U Y^T for
    the F free rows); sum the first F rows over the first axis, in order.

    Four frames by four rows per sweep: ``numerators`` has F rounded up to a multiple of 4 rows
    (distinct rows, so the sweep vectorises); missing frames or rows get weight zero.
    """
    N, K = data.shape
    n_chunks = numerators.shape[0]
    for chunk in nb.prange(n_chunks):
        p = numerators[chunk]
        p[:] = 0
        w = np.empty((4, 4), dtype=data.dtype)
        start, stop = chunk * N // n_chunks, (chunk + 1) * N // n_chunks
        for n in range(start, stop, 4):
            count = min(4, stop - n)
            ya, yb = data[n], data[min(n + 1, stop - 1)]
            yc, yd = data[min(n + 2, stop - 1)], data[min(n + 3, stop - 1)]
            for f in range(0, F, 4):
                p0, p1, p2, p3 = p[f], p[f + 1], p[f + 2], p[f + 3]
                # weights: zero for a frame or row beyond the end (its sweep adds nothing)
                w[:] = 0
                for j in range(count):
                    for i in range(min(4, F - f)):
                        w[j, i] = acts_t[n + j, first_row + f + i]
                a0, a1, a2, a3 = w[0, 0], w[0, 1], w[0, 2], w[0, 3]
                b0, b1, b2, b3 = w[1, 0], w[1, 1], w[1, 2], w[1, 3]
                c0, c1, c2, c3 = w[2, 0], w[2, 1], w[2, 2], w[2, 3]
                d0, d1, d2, d3 = w[3, 0], w[3, 1], w[3, 2], w[3, 3]
                for k in range(K):
                    ra, rb, rc, rd = ya[k], yb[k], yc[k], yd[k]
                    p0[k] += (ra * a0 + rb * b0) + (rc * c0 + rd * d0)
                    p1[k] += (ra * a1 + rb * b1) + (rc * c1 + rd * d1)
                    p2[k] += (ra * a2 + rb * b2) + (rc * c2 + rd * d2)
                    p3[k] += (ra * a3 + rb * b3) + (rc * c3 + rd * d3)


#: Groups of kernels that one kind of factorization calls, loaded and checked together: the general
#: kernels (IS, KL, other betas), the rank-4 ones (IS and KL up to rank 4), the Euclidean ones, the
#: Euclidean objective alone (which the numpy kernel of :mod:`.updates` borrows), and the stereo
#: spatial model's (:mod:`.spatial_kernels`).
FAMILIES = ("general", "rank4", "euclidean", "euclidean_objective", "spatial")


def _examples(family: str, dtype) -> list[tuple[Any, tuple]]:
    """The kernels of a family, each with arguments for a tiny problem of the real calls' types.

    numba compiles (and caches) one machine code per signature of argument types, not values: the
    kind of update is an argument, so one call covers IS, KL and the general betas.
    """
    if family == "spatial":
        from . import spatial_kernels

        return spatial_kernels.examples(dtype)
    data = np.ones((4, 3), dtype=dtype)
    bases_t = np.ones((2, 3), dtype=dtype)
    acts_t = np.ones((4, 2), dtype=dtype)
    out = np.empty((4, 2), dtype=dtype)
    sums = np.empty((2, 2))
    sums3 = np.empty((2, 3))  # with the majorizer's drop (iteration_terms4)
    if family == "general":
        partials = np.empty((2, 2, 3), dtype=dtype)  # one row per free basis
        return [
            (activation_terms, (data, bases_t, acts_t, GENERAL, 0.5, 1e-30, out, out, True, sums)),
            (basis_terms, (data, bases_t, acts_t, GENERAL, 0.5, 1e-30, 0, partials, partials)),
        ]
    parts = np.empty((2, 4, 3), dtype=dtype)  # rows of four: the register-blocked kernels
    if family == "rank4":
        bases4 = np.ones((4, 3), dtype=dtype)
        column4 = np.ones(4, dtype=dtype)
        return [
            (activation_terms4, (data, bases4, acts_t, KL, out, out, True, sums)),
            (basis_terms4, (data, bases4, acts_t, KL, parts, parts)),
            (
                iteration_terms4,
                (data, bases4, acts_t.copy(), KL, column4, 1e-30, out, out, parts, parts, True, True, sums3),
            ),
        ]
    objective = [(euclidean_terms, (data, bases_t, acts_t, out, np.empty(2)))]
    if family == "euclidean_objective":
        return objective
    if family == "euclidean":
        return objective + [
            (euclidean_projections, (data, bases_t, out)),
            (euclidean_sums, (data, acts_t, 0, 2, parts)),
        ]
    raise ValueError(f"family={family!r} is not one of {list(FAMILIES)}")


def load_family(family: str, dtype=np.float32) -> None:
    """Compile (or load from numba's cache) the kernels of a family for ``dtype`` by running them on
    a tiny problem, so that the first real call does not pay for it (and any failure shows here)."""
    for kernel, arguments in _examples(family, dtype):
        kernel(*arguments)


def cached(family: str, dtype=np.float32) -> bool:
    """Whether the kernels of a family for ``dtype`` are compiled in this process or stored in
    numba's on-disk cache for this source, numba version and machine: loading them will not
    compile. Reads the cache indexes only (numba's private API: callers treat errors as unknown).
    """
    for kernel, arguments in _examples(family, dtype):
        signature = tuple(kernel.typeof_pyval(argument) for argument in arguments)
        if signature in kernel.overloads:
            continue
        # one index per kernel, {key: data file}; numba reads it as empty when the source changed
        cache = kernel._cache
        key = cache._index_key(signature, kernel.targetctx.codegen())
        name = cache._cache_file._load_index().get(key)
        if name is None or not os.path.exists(cache._cache_file._data_path(name)):
            return False
    return True


def load(dtype=np.float32, kinds=(IS, KL, EUC, GENERAL), general: bool = True, rank4: bool = True) -> None:
    """Compile (or load from numba's cache) the kernels for ``dtype`` and these kinds (see
    :func:`load_family`): the general kernels, the rank-4 ones (IS, KL) and the Euclidean ones (EUC)."""
    if general and any(kind != EUC for kind in kinds):
        load_family("general", dtype)
    if rank4 and (IS in kinds or KL in kinds):
        load_family("rank4", dtype)
    if EUC in kinds:
        load_family("euclidean", dtype)


def warm_up() -> None:
    """Compile (or load from cache) every kernel for float32 and float64."""
    for dtype in (np.float32, np.float64):
        load(dtype)
        load_family("spatial", dtype)
