"""Command-line interface: parsing, progress, messages and exit codes; no maths here.

Exit codes: 0 success; 1 a file could not be processed (the others still are); 2 usage error
(nothing was started); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from pathlib import Path

import click

from . import __version__
from .audio import FORMATS, output_subtype
from .errors import NmfsepError, ParameterError
from .nmf.init import INITS
from .separate import (
    DEFAULT_DIVERGENCE,
    DEFAULT_INIT,
    DEFAULT_MASK_POWER,
    DEFAULT_MAX_ITER,
    DEFAULT_POWER,
    DEFAULT_TEMPLATE,
    DEFAULT_TOL,
    Options,
    check_template,
    planned_outputs,
    separate_file,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_DIVERGENCES = ["kl", "is", "euc"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="nmfsep")
def main() -> None:
    """Separate audio into its parts with Non-negative Matrix Factorization."""


def _check_hop(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    n_fft = ctx.params.get("n_fft", 2048)
    if value is not None and n_fft is not None and value > n_fft:
        raise click.BadParameter(f"{value} is larger than --n-fft {n_fft}")
    return value


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=True))
@click.option(
    "-m",
    "--components",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Number of NMF components M.",
)
@click.option(
    "-d",
    "--divergence",
    type=click.Choice(_DIVERGENCES, case_sensitive=False),
    default=DEFAULT_DIVERGENCE,
    show_default=True,
    help="Divergence: Kullback-Leibler, Itakura-Saito or Euclidean.",
)
@click.option("--beta", type=float, default=None, help="Any real beta of the beta-divergence (overrides -d).")
@click.option(
    "--n-fft",
    type=click.IntRange(min=2),
    default=2048,
    show_default=True,
    is_eager=True,
    help="STFT frame length in samples.",
)
@click.option(
    "--hop",
    type=click.IntRange(min=1),
    default=None,
    callback=_check_hop,
    help="STFT hop in samples (<= --n-fft).  [default: n-fft/4]",
)
@click.option(
    "--power",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_POWER,
    show_default=True,
    help="Spectrogram exponent p: Y = |X|^p (1 magnitude, 2 power).",
)
@click.option(
    "--mask-power",
    type=click.FloatRange(min=0, min_open=True),
    default=DEFAULT_MASK_POWER,
    show_default=True,
    help="Mask exponent a in (h_j u_j)^a / sum_i (h_i u_i)^a.",
)
@click.option(
    "--max-iter",
    type=click.IntRange(min=0),
    default=DEFAULT_MAX_ITER,
    show_default=True,
    help="Maximum NMF iterations per restart.",
)
@click.option(
    "--tol",
    type=click.FloatRange(min=0),
    default=DEFAULT_TOL,
    show_default=True,
    help="Stop when an iteration lowers the divergence by less than this fraction.",
)
@click.option(
    "--n-init",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Restarts; the best fit is kept.",
)
@click.option(
    "--init",
    type=click.Choice(list(INITS)),
    default=DEFAULT_INIT,
    show_default=True,
    help="Initialisation of the first restart (later restarts are random).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same bytes.")
@click.option(
    "--sparsity",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="l1 penalty on the activations.",
)
@click.option(
    "--sr", type=click.IntRange(min=1), default=None, help="Resample to this rate first.  [default: keep]"
)
@click.option(
    "-o",
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("separated"),
    show_default=True,
    help="Output folder.",
)
@click.option(
    "--filename",
    default=DEFAULT_TEMPLATE,
    show_default=True,
    help="Output name template; placeholders {track} {component} {index} {ext}.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(list(FORMATS)),
    default="wav",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--subtype",
    default=None,
    help="Output sample format (PCM_16, PCM_24, FLOAT, ...).  [default: the input's where possible]",
)
@click.option(
    "--save-model",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Also save bases, activations and settings to this .npz ({track} is replaced).",
)
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def separate(
    inputs,
    components,
    divergence,
    beta,
    n_fft,
    hop,
    power,
    mask_power,
    max_iter,
    tol,
    n_init,
    init,
    seed,
    sparsity,
    sr,
    out_dir,
    filename,
    fmt,
    subtype,
    save_model,
    force,
    quiet,
    debug,
):
    """Separate INPUTS into M components, one audio file per component.

    \b
    Components are ordered by spectral centroid, low to high, and sum back to the input:
      nmfsep separate song.wav -m 4   ->  separated/song/c1.wav ... c4.wav
    """
    options = {
        "divergence": divergence.lower(),
        "beta": beta,
        "n_fft": n_fft,
        "hop_length": hop,
        "power": power,
        "mask_power": mask_power,
        "max_iter": max_iter,
        "tol": tol,
        "n_init": n_init,
        "init": init,
        "seed": seed,
        "sparsity": sparsity,
        "sr": sr,
    }
    # Everything that can be checked without audio is checked before the first file (exit 2).
    try:
        Options(n_components=components, **options)
        check_template(filename, components)
        output_subtype(fmt, subtype, None)
        if save_model is not None and len(inputs) > 1 and "{track}" not in str(save_model):
            raise ParameterError("--save-model needs {track} in its path when there are several inputs")
        inputs = list(dict.fromkeys(inputs))  # the same path twice is one input
        _check_collisions(inputs, components, out_dir, filename, fmt, save_model)
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None

    failed = 0
    try:
        for path in inputs:
            ok = _separate_one(
                path, components, options, out_dir, filename, fmt, subtype, save_model, force, quiet, debug
            )
            failed += not ok
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    if len(inputs) > 1 and not quiet:
        click.echo(f"{len(inputs) - failed} done, {failed} failed", err=True)
    sys.exit(EXIT_FAILED if failed else EXIT_OK)


def _check_collisions(inputs, components, out_dir, filename, fmt, save_model) -> None:
    """Two inputs must not write the same file (song.wav and song.flac into {track}/...)."""
    owner: dict[Path, Path] = {}
    for path in inputs:
        outputs, model_path = planned_outputs(path, components, out_dir, filename, fmt, save_model)
        for target in outputs + ([model_path] if model_path else []):
            resolved = target.resolve()
            if resolved in owner:
                raise ParameterError(
                    f"{owner[resolved]} and {path} would both write {target}; use {{track}} in --filename"
                )
            owner[resolved] = path


def _separate_one(
    path, components, options, out_dir, filename, fmt, subtype, save_model, force, quiet, debug
) -> bool:
    """Separate one file, reporting progress, warnings and errors; True on success."""
    show_progress = not quiet and sys.stderr.isatty()
    bar = None
    if show_progress:
        total = options["max_iter"] * options["n_init"]
        bar = click.progressbar(
            length=max(total, 1), label=f"{path.name}", file=sys.stderr, show_eta=True, show_percent=True
        )
        bar.__enter__()
    callback = (lambda progress: bar.update(1)) if bar is not None else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = separate_file(
                path,
                components,
                out_dir=out_dir,
                filename=filename,
                format=fmt,
                subtype=subtype,
                force=force,
                save_model_to=save_model,
                callback=callback,
                **options,
            )
    except NmfsepError as exc:
        _close(bar)
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        return False
    except Exception as exc:  # an unexpected failure must not stop the other files
        _close(bar)
        if debug:
            traceback.print_exc()
        click.echo(f"Error: unexpected {type(exc).__name__}: {exc} ({path})", err=True)
        return False
    _close(bar, done=True)
    if not quiet:
        for warning in caught:
            if not issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning)):
                click.echo(f"Warning: {warning.message} ({path})", err=True)
        separation = result.separation
        state = "converged" if separation.converged else "max-iter reached"
        folders = sorted({os.fspath(p.parent) for p in result.outputs})
        where = folders[0] + os.sep if len(folders) == 1 else f"{len(folders)} folders"
        click.echo(
            f"{path}: {len(result.outputs)} components, {separation.n_iter} iterations ({state}), "
            f"divergence {separation.objective[-1]:.4g}, {result.seconds:.1f} s -> {where}",
            err=True,
        )
    return True


def _close(bar, done: bool = False) -> None:
    if bar is not None:
        if done:  # converged early: show the work as complete
            bar.update(bar.length - bar.pos)
        bar.__exit__(None, None, None)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="nmfsep")
