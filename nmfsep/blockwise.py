"""The two passes of a separation over the audio, block of frames by block of frames.

Analysis: audio -> STFT -> the magnitude spectrogram Y, stored frame-major (N x K float32, in
memory, or memory-mapped to a temporary file beyond a memory budget), which the NMF engine works on
in place; for the spatial model, the complex STFT X of every channel (C x K x N complex64, held
the same way). Synthesis: audio -> STFT again -> masks from the factorization (or multichannel
Wiener filters from the spatial model) -> overlap-add -> the outputs, written as they are complete. Apart from Y, memory holds one block of frames, so a file of
any length is separated in bounded memory; in-memory audio goes through the same code.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .audio import AudioStream
from .masks import GroupMasks
from .nmf.spatial import SpatialModel
from .spectrogram import OverlapAdd, STFTSettings, frame_blocks, n_frames, read_exactly, stft_window

#: Frames per block in both passes (a block of 44.1 kHz stereo at n_fft 2048 is ~16 MB of spectra).
BLOCK_FRAMES = 1024


def spectrogram_frames(
    stream: AudioStream,
    settings: STFTSettings,
    power: float = 1.0,
    *,
    max_memory: float | None = None,
    block_frames: int | None = None,
) -> tuple[np.ndarray, bool]:
    """Y^T: the sum over channels of ``|X_c|^power``, frame-major, computed block by block.

    For ``power != 1`` the magnitudes are first scaled by 2 / sum(window) (a full-scale sinusoid
    has magnitude ~1), so ``|X|^p`` stays within float32 for any practical p; the factorization
    does not depend on the overall scale.

    Parameters
    ----------
    stream : AudioStream
    settings : STFTSettings
    power : float > 0
    max_memory : float, optional
        Bytes Y may take in memory; a larger Y is memory-mapped to a temporary file (in TMPDIR),
        deleted when the array is released. None: always in memory.
    block_frames : int, optional
        Frames per block (:data:`BLOCK_FRAMES` by default).

    Returns
    -------
    frames : np.ndarray [shape=(N, K), dtype=float32]
        Y^T (``frames.T`` is Y), possibly a ``np.memmap``.
    silent : bool
        True when every sample is zero.
    """
    block_frames = block_frames or BLOCK_FRAMES
    shape = (n_frames(stream.n_samples, settings), settings.n_bins)
    if max_memory is not None and shape[0] * shape[1] * 4 > max_memory:
        # the map keeps its own handle on the (already unlinked) file: it is freed with the array
        with tempfile.TemporaryFile(prefix="nmfsep-") as handle:
            frames = np.memmap(handle, dtype=np.float32, mode="w+", shape=shape)
    else:
        frames = np.empty(shape, dtype=np.float32)
    scale = 2.0 / float(stft_window(settings, np.float64).sum()) if power != 1 else 1.0
    term = np.empty((block_frames, settings.n_bins), dtype=np.float32)
    silent = True
    for first, spectra in frame_blocks(
        stream.reader(), stream.n_channels, stream.n_samples, settings, block_frames
    ):
        count = spectra.shape[1]
        target = frames[first : first + count]
        for channel, spectrum in enumerate(spectra):
            magnitude = target if channel == 0 else term[:count]
            np.abs(spectrum, out=magnitude)
            if power != 1:
                magnitude *= scale
                np.power(magnitude, power, out=magnitude)
            if channel:
                target += magnitude
        silent = silent and not np.any(target)
    return frames, silent


def resynthesise(
    stream: AudioStream,
    settings: STFTSettings,
    bases: np.ndarray,
    activations: np.ndarray,
    groups: Sequence[Sequence[int]],
    mask_power: float,
    write: Callable[[int, np.ndarray], None],
    *,
    block_frames: int | None = None,
) -> None:
    """Mask the input's STFT with each group's soft mask and invert it, block by block.

    ``write(index, samples)`` receives the samples [shape=(C, s)] of output ``index`` (one per
    group) in order, as soon as they are complete; over the whole call each output gets exactly
    the input's length. The last output is the input minus the others, so the outputs sum to the
    input exactly (in float32).

    Parameters
    ----------
    stream : AudioStream
        The audio that was factorized (read again from the start).
    settings : STFTSettings
    bases : np.ndarray [shape=(K, M)]
    activations : np.ndarray [shape=(M, N)]
    groups : sequence of sequence of int
        A partition of the M components, one group per output.
    mask_power : float > 0
    write : callable
    block_frames : int, optional
        Frames per block (:data:`BLOCK_FRAMES` by default).
    """
    block_frames = block_frames or BLOCK_FRAMES
    masks = GroupMasks(bases, activations, [list(group) for group in groups], mask_power)
    # The masks sum to 1, so the outputs sum to the input: the last output is the input minus the
    # others (exactly, instead of to float rounding), which spares one mask and inverse transform.
    masked_outputs = max(1, len(groups) - 1)
    # One thread per masked output, even beyond the core count (with 3 outputs on 2 cores, 2 threads
    # leave one core idle for a third of every block; measured 1.0-1.3 vs 1.0-1.1 s on 3 minutes),
    # up to twice the cores.
    cores = os.cpu_count() or 1
    threads = min(masked_outputs, 2 * cores) if cores > 1 else 1
    inverses = [
        OverlapAdd(stream.n_channels, stream.n_samples, settings, workers=1 if threads > 1 else -1)
        for _ in range(masked_outputs)
    ]
    remainder = stream.reader() if len(groups) > 1 else None
    buffers: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def output(index: int, first: int, spectra: np.ndarray, shared) -> np.ndarray:
        # one output's share of a block: its own buffers, so outputs run in parallel threads
        count = spectra.shape[1]
        if index not in buffers:
            buffers[index] = (np.empty(spectra.shape[1:], np.float32), np.empty_like(spectra))
        mask, masked = (buffer[..., :count, :] for buffer in buffers[index])
        masks.group_mask(index, first, first + count, shared, mask)
        np.multiply(spectra, mask, out=masked)
        piece = inverses[index].push(masked)
        write(index, piece)
        return piece

    def last(pieces: list[np.ndarray]) -> None:
        # every OverlapAdd emits the same samples at each step: subtract them from the input's
        if remainder is not None:
            rest = read_exactly(remainder, stream.n_channels, pieces[0].shape[1])
            for piece in pieces:
                rest -= piece
            write(len(groups) - 1, rest)

    # numpy, scipy.fft and libsndfile release the GIL: the outputs of a block are computed in
    # parallel, each by one thread, while this thread transforms the next block; the blocks go in
    # order, so every file is written in order.
    blocks = frame_blocks(stream.reader(), stream.n_channels, stream.n_samples, settings, block_frames)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        block = next(blocks, None)
        while block is not None:
            first, spectra = block
            shared = masks.shared(first, first + spectra.shape[1])
            tasks = [pool.submit(output, index, first, spectra, shared) for index in range(masked_outputs)]
            block = next(blocks, None)
            last([task.result() for task in tasks])
    pieces = [inverse.finish() for inverse in inverses]
    for index, piece in enumerate(pieces):
        write(index, piece)
    last(pieces)


def multichannel_spectrogram(
    stream: AudioStream,
    settings: STFTSettings,
    *,
    max_memory: float | None = None,
    block_frames: int | None = None,
) -> tuple[np.ndarray, bool]:
    """X: the complex STFT of every channel [shape=(C, K, N), dtype=complex64], block by block.

    Bin-major (each channel's bins are rows of frames), the layout of the spatial model
    (:mod:`nmfsep.nmf.spatial`), which reads it a block of frames at a time. 8 bytes per channel
    and bin: beyond ``max_memory`` it is memory-mapped to a temporary file (in TMPDIR), deleted
    when the array is released. Returns X and whether every sample is zero.
    """
    block_frames = block_frames or BLOCK_FRAMES
    shape = (stream.n_channels, settings.n_bins, n_frames(stream.n_samples, settings))
    if max_memory is not None and int(np.prod(shape)) * 8 > max_memory:
        with tempfile.TemporaryFile(prefix="nmfsep-") as handle:
            X = np.memmap(handle, dtype=np.complex64, mode="w+", shape=shape)
    else:
        X = np.empty(shape, dtype=np.complex64)
    silent = True
    for first, spectra in frame_blocks(
        stream.reader(), stream.n_channels, stream.n_samples, settings, block_frames
    ):
        X[:, :, first : first + spectra.shape[1]] = spectra.transpose(0, 2, 1)
        silent = silent and not np.any(spectra)
    return X, silent


def resynthesise_images(
    stream: AudioStream,
    settings: STFTSettings,
    model: SpatialModel,
    write: Callable[[int, np.ndarray], None],
    *,
    block_frames: int | None = None,
) -> None:
    """Every source's image by multichannel Wiener filtering of the input's STFT, block by block.

    ``write(index, samples)`` as in :func:`resynthesise`: one output per source of ``model``, in
    order, each exactly the input's length. The last output is the input minus the others, so the
    images add up to the input exactly (the filters add up to the identity; this makes it exact
    in float32 as well).
    """
    block_frames = block_frames or BLOCK_FRAMES
    J = model.n_sources
    filtered = max(1, J - 1)
    inverses = [OverlapAdd(stream.n_channels, stream.n_samples, settings) for _ in range(filtered)]
    remainder = stream.reader() if J > 1 else None

    def emit(pieces: list[np.ndarray]) -> None:
        for index, piece in enumerate(pieces):
            write(index, piece)
        if remainder is not None:
            rest = read_exactly(remainder, stream.n_channels, pieces[0].shape[1])
            for piece in pieces:
                rest -= piece
            write(J - 1, rest)

    for first, spectra in frame_blocks(
        stream.reader(), stream.n_channels, stream.n_samples, settings, block_frames
    ):
        frames = slice(first, first + spectra.shape[1])
        X = np.ascontiguousarray(spectra.transpose(0, 2, 1), dtype=np.complex64)  # (C, K, b)
        images = model.images(X, frames)  # (J, C, K, b)
        emit([inverse.push(images[j].transpose(0, 2, 1)) for j, inverse in enumerate(inverses)])
    emit([inverse.finish() for inverse in inverses])
