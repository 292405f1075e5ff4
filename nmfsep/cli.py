"""Command-line interface: parsing, progress, messages and exit codes; no maths here.

Exit codes: 0 success; 1 a file could not be processed (the others still are); 2 usage error
(nothing was started); 130 interrupted.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
import warnings
from pathlib import Path

import click

from . import __version__
from .audio import FORMATS, output_subtype
from .errors import NmfsepError, OutputError, ParameterError
from .grouping import GROUPING_COMPONENTS_PER_SOURCE
from .nmf.init import INITS
from .plan import check_folders_writable
from .separate import (
    DEFAULT_DIVERGENCE,
    DEFAULT_INIT,
    DEFAULT_MASK_POWER,
    DEFAULT_MAX_ITER,
    DEFAULT_POWER,
    DEFAULT_TEMPLATE,
    DEFAULT_TOL,
    Options,
    check_sources,
    check_template,
    load_sources,
    memory_budget,
    output_names,
    planned_outputs,
    source_name,
    target_rate,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_DIVERGENCES = ["kl", "is", "euc"]

#: How long the first run's numba compilation takes (KL, rank 4, float32; measured 22-43 s on 2 busy cores).
COMPILE_SECONDS = "20-45"

#: Output formats whose encoding changes the samples: their parts no longer sum to the input.
LOSSY_FORMATS = {"ogg"}


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="nmfsep")
def main() -> None:
    """Separate audio into its parts with Non-negative Matrix Factorization."""


def _check_hop(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    n_fft = ctx.params.get("n_fft", 2048)
    if value is not None and n_fft is not None and value > n_fft:
        raise click.BadParameter(f"{value} is larger than --n-fft {n_fft}")
    return value


def _nmf_options(components: int = 4):
    """The factorization options shared by `separate`, `plot` and `learn`."""
    return lambda command: _apply_nmf_options(command, components)


def _apply_nmf_options(command, components_default: int):
    decorators = [
        click.option(
            "-m",
            "--components",
            type=click.IntRange(min=1),
            default=components_default,
            show_default=True,
            help="Number of NMF components M.",
        ),
        click.option(
            "-d",
            "--divergence",
            type=click.Choice(_DIVERGENCES, case_sensitive=False),
            default=DEFAULT_DIVERGENCE,
            show_default=True,
            help="Divergence: Kullback-Leibler, Itakura-Saito or Euclidean.",
        ),
        click.option(
            "--beta", type=float, default=None, help="Any real beta of the beta-divergence (overrides -d)."
        ),
        click.option(
            "--n-fft",
            type=click.IntRange(min=2),
            default=2048,
            show_default=True,
            is_eager=True,
            help="STFT frame length in samples.",
        ),
        click.option(
            "--hop",
            type=click.IntRange(min=1),
            default=None,
            callback=_check_hop,
            help="STFT hop in samples (<= --n-fft).  [default: n-fft/4]",
        ),
        click.option(
            "--power",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_POWER,
            show_default=True,
            help="Spectrogram exponent p: Y = |X|^p (1 magnitude, 2 power).",
        ),
        click.option(
            "--mask-power",
            type=click.FloatRange(min=0, min_open=True),
            default=DEFAULT_MASK_POWER,
            show_default=True,
            help="Mask exponent a in (h_j u_j)^a / sum_i (h_i u_i)^a.",
        ),
        click.option(
            "--max-iter",
            type=click.IntRange(min=0),
            default=DEFAULT_MAX_ITER,
            show_default=True,
            help="Maximum NMF iterations per restart.",
        ),
        click.option(
            "--tol",
            type=click.FloatRange(min=0),
            default=DEFAULT_TOL,
            show_default=True,
            help="Stop when an iteration lowers the divergence by less than this fraction.",
        ),
        click.option(
            "--n-init",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Restarts; the best fit is kept.",
        ),
        click.option(
            "--init",
            type=click.Choice(list(INITS)),
            default=DEFAULT_INIT,
            show_default=True,
            help="Initialisation of the first restart (later restarts are random).",
        ),
        click.option(
            "--seed", type=int, default=0, show_default=True, help="Random seed: same seed, same bytes."
        ),
        click.option(
            "--sparsity",
            type=click.FloatRange(min=0),
            default=0.0,
            show_default=True,
            help="l1 penalty on the activations.",
        ),
        click.option(
            "--sr",
            type=click.IntRange(min=1),
            default=None,
            help="Resample to this rate first.  [default: keep]",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _pop_nmf_options(params: dict) -> tuple[int, dict]:
    """Take the shared options out of a command's parameters: (M, keyword arguments of the pipeline)."""
    options = {
        "divergence": params.pop("divergence").lower(),
        "beta": params.pop("beta"),
        "n_fft": params.pop("n_fft"),
        "hop_length": params.pop("hop"),
        "power": params.pop("power"),
        "mask_power": params.pop("mask_power"),
        "max_iter": params.pop("max_iter"),
        "tol": params.pop("tol"),
        "n_init": params.pop("n_init"),
        "init": params.pop("init"),
        "seed": params.pop("seed"),
        "sparsity": params.pop("sparsity"),
        "sr": params.pop("sr"),
    }
    return params.pop("components"), options


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@_nmf_options()
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
@click.option(
    "--plot",
    "plot",
    is_flag=True,
    help="Also draw the overview figure next to the components (overview.png).",
)
@click.option("-r", "--recursive", is_flag=True, help="Search folders in INPUTS recursively for audio files.")
@click.option(
    "--from-list",
    "from_list",
    type=click.File("r"),
    default=None,
    help="Read more input paths from this file, one per line ('-' for stdin; # comments).",
)
@click.option(
    "-j",
    "--jobs",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Files separated in parallel (worker processes, one BLAS thread each).",
)
@click.option(
    "--scheduler",
    default=None,
    help="Run the files on this Dask distributed scheduler (e.g. tcp://head:8786); needs nmfsep[dask].",
)
@click.option(
    "--skip-existing",
    is_flag=True,
    help="Skip inputs whose outputs all exist; redo those with only some (resume a stopped run).",
)
@click.option(
    "--manifest",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Write a JSON record of every input (status, error, outputs, figures) to this file.",
)
@click.option("--json", "json_lines", is_flag=True, help="Print one JSON object per input to stdout.")
@click.option("-f", "--force", is_flag=True, help="Overwrite existing outputs.")
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Path(path_type=Path, dir_okay=False),
    help="Supervised: a source model from `nmfsep learn` (repeat per source); outputs get its name.",
)
@click.option(
    "--free",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Semi-supervised: components learned freely besides --source, collected into --rest-name.",
)
@click.option("--rest-name", default="rest", show_default=True, help="Output name of the --free components.")
@click.option(
    "--sources",
    "n_sources",
    type=click.IntRange(min=1),
    default=None,
    help="Blind: group the components into this many sources s1..sJ  [-m default: 6 per source].",
)
@click.option(
    "--max-memory",
    default=None,
    metavar="SIZE",
    help="Memory the spectrogram may take (e.g. 500M, 2G); beyond it, it is memory-mapped to a "
    "temporary file in TMPDIR  [default: half of the available memory].",
)
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def separate(
    inputs,
    out_dir,
    filename,
    fmt,
    subtype,
    save_model,
    plot,
    recursive,
    from_list,
    jobs,
    scheduler,
    skip_existing,
    manifest,
    json_lines,
    force,
    sources,
    free,
    rest_name,
    n_sources,
    max_memory,
    quiet,
    debug,
    **params,
):
    """Separate INPUTS (files or folders) into M components, one audio file per component.

    \b
    Components are ordered by spectral centroid, low to high, and sum back to the input:
      nmfsep separate song.wav -m 4   ->  separated/song/c1.wav ... c4.wav
      nmfsep separate music/ -r -m 4 --jobs 2 --skip-existing --manifest run.json
      find . -name '*.flac' | nmfsep separate --from-list - -m 4
      nmfsep separate mix.wav --source voice.npz --source piano.npz   ->  voice.wav, piano.wav
      nmfsep separate mix.wav --sources 2                             ->  s1.wav, s2.wav

    Exit status: 0 all done (or skipped), 1 at least one input failed (the others are done), 2 usage
    error (nothing started), 130/143 interrupted by SIGINT/SIGTERM (the manifest is still written).
    """
    from . import batch

    started = time.time()
    components, options = _pop_nmf_options(params)
    if n_sources is not None and _defaulted("components"):
        components = GROUPING_COMPONENTS_PER_SOURCE * n_sources
    options.update(n_sources=n_sources, free=free, rest_name=rest_name)
    plot_to = _overview_path(out_dir, filename) if plot else None
    # Everything that can be checked without audio is checked before the first file (exit 2).
    try:
        if force and skip_existing:
            raise ParameterError("--force and --skip-existing contradict each other")
        memory_budget(max_memory)
        settings_check = Options(n_components=components, **options)
        if sources and n_sources is not None:
            raise ParameterError("--source (supervised) and --sources (blind) do not go together")
        if free and not sources:
            raise ParameterError("--free adds components to --source models; without them use -m")
        try:
            models, model_paths = load_sources(sources)
            check_sources(models, settings_check, model_paths)
            target_rate(settings_check, models)
        except ParameterError:
            raise
        except NmfsepError as exc:  # a bad model file is a processing error: exit 1, nothing started
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_FAILED)
        names = output_names(
            components,
            n_sources=n_sources,
            source_names=tuple(map(source_name, models)),
            free=free,
            rest_name=rest_name,
        )
        check_template(filename, len(names))
        output_subtype(fmt, subtype, None)
        lines = list(from_list) if from_list is not None else []
        if not inputs and from_list is None:
            raise ParameterError("no INPUTS given (files, folders or --from-list)")
        tracks = batch.collect_inputs(inputs, recursive=recursive, from_list=lines)
        if save_model is not None and len(tracks) > 1 and "{track}" not in str(save_model):
            raise ParameterError("--save-model needs {track} in its path when there are several inputs")
        folders = _check_collisions(tracks, names, out_dir, filename, fmt, save_model, plot_to)
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None
    # Folders that cannot be written fail every input: say so now, not after the work (exit 1).
    try:
        check_folders_writable(sorted(folders | ({manifest.parent} if manifest is not None else set())))
    except NmfsepError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_FAILED)

    if not quiet:
        rank = sum(model.bases.shape[1] for model in models) + free if models else components
        _announce_compiling(rank, settings_check.resolved_beta)
    settings = {
        "n_components": components,
        "out_dir": out_dir,
        "filename": filename,
        "format": fmt,
        "subtype": subtype,
        "force": force,
        "save_model_to": save_model,
        "plot_to": plot_to,
        "sources": tuple(sources),
        "max_memory": max_memory,
        **options,
    }
    tty = sys.stderr.isatty() and not quiet
    per_iteration = tty and len(tracks) == 1 and jobs == 1 and not scheduler
    files_bar = None
    if tty and not per_iteration:
        files_bar = click.progressbar(
            length=len(tracks), label="files", file=sys.stderr, show_eta=True, show_pos=True
        )
        files_bar.__enter__()

    def report(outcome):
        lines = _outcome_lines(outcome, quiet, debug, lossy=fmt in LOSSY_FORMATS)
        if files_bar is not None and lines:
            click.echo("\r\033[K", nl=False, err=True)  # clear the bar's line before printing
        for line in lines:
            click.echo(line, err=True)
        if json_lines:
            click.echo(batch.json_line(outcome))
        if files_bar is not None:
            files_bar.update(1)

    def progress_bar_for(path):
        if not per_iteration:
            return None
        bar = click.progressbar(
            length=max(options["max_iter"] * options["n_init"], 1),
            label=path.name,
            file=sys.stderr,
            show_eta=True,
            show_percent=True,
        )
        bar.__enter__()
        progress_bars.append(bar)
        return lambda progress: bar.update(1)

    progress_bars: list = []

    def on_outcome(outcome):
        for bar in progress_bars:
            _close(bar, done=outcome.status == "done")
        progress_bars.clear()
        report(outcome)

    try:
        outcomes, stopped = batch.run_batch(
            tracks,
            settings,
            jobs=jobs,
            scheduler=scheduler,
            skip_existing=skip_existing,
            on_outcome=on_outcome,
            callback_for=progress_bar_for,
        )
    except NmfsepError as exc:  # the scheduler could not be reached: nothing was started
        _close(files_bar)
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    finally:
        for bar in progress_bars:
            _close(bar)
    _close(files_bar)
    if stopped is not None:
        click.echo(f"Interrupted by {batch.signal.Signals(stopped).name}.", err=True)
    counts = batch.summary_counts(outcomes)
    if len(tracks) > 1 and not quiet or stopped is not None:
        click.echo(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed", err=True)
    if manifest is not None:
        try:
            batch.write_manifest(manifest, outcomes, argv=sys.argv, started=started, stopped=stopped)
        except NmfsepError as exc:
            click.echo(f"Error: manifest not written: {exc}", err=True)
            sys.exit(EXIT_FAILED if stopped is None else batch.exit_code(outcomes, stopped))
    sys.exit(batch.exit_code(outcomes, stopped))


def _outcome_lines(outcome, quiet: bool, debug: bool, lossy: bool = False) -> list[str]:
    """The stderr lines for one finished input (with ``debug``, a failure's traceback first)."""
    if outcome.status == "failed":
        trace = [outcome.traceback.rstrip("\n")] if debug and outcome.traceback else []
        return [*trace, f"Error: {outcome.error}"]
    if quiet:
        return []
    lines = [f"Warning: {message} ({outcome.input})" for message in outcome.warnings]
    if outcome.status == "skipped":
        lines.append(f"{outcome.input}: skipped, all outputs exist with the same settings")
    else:
        folders = sorted({os.path.dirname(p) for p in outcome.outputs})
        where = folders[0] + os.sep if len(folders) == 1 else f"{len(folders)} folders"
        caveat = " (lossy: the parts no longer sum exactly to the input)" if lossy else ""
        lines.append(
            f"{outcome.input}: {outcome.components} components, {outcome.iterations} iterations, "
            f"divergence {outcome.divergence:.4g}, {outcome.seconds:.1f} s -> {where}{caveat}"
        )
    return lines


def _overview_path(out_dir: Path, filename: str) -> str:
    """Where `separate --plot` draws: beside the components, one figure per track."""
    folder = Path(filename).parent
    name = "overview.png" if "{track}" in str(folder) else "{track}.overview.png"
    return os.fspath(Path(out_dir) / folder / name)


def _parse_size(ctx: click.Context, param: click.Parameter, value: str | None):
    if value is None:
        return None
    try:
        width, height = (float(part) for part in value.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not WIDTHxHEIGHT in inches, e.g. 12x8") from None
    if not (0 < width <= 100 and 0 < height <= 100):
        raise click.BadParameter(f"{value!r}: each side must be between 0 and 100 inches")
    return width, height


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Figure file; the format comes from the suffix: .png, .pdf or .svg.  [default: INPUT.png]",
)
@click.option(
    "--what",
    type=click.Choice(["overview", "components", "spectrogram", "bases", "activations"]),
    default="overview",
    show_default=True,
    help="Which figure to draw.",
)
@click.option(
    "--model",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Draw this saved model (from separate --save-model) of INPUT instead of refitting.",
)
@click.option(
    "--spectrogram-only", is_flag=True, help="Only the input spectrogram (same as --what spectrogram)."
)
@click.option(
    "--freq-scale",
    type=click.Choice(["linear", "log", "mel"]),
    default="log",
    show_default=True,
    help="Frequency axis.",
)
@click.option(
    "--db-range",
    type=click.FloatRange(min=0, min_open=True),
    default=80.0,
    show_default=True,
    help="Dynamic range of the colour scale (dB below the peak).",
)
@click.option(
    "--fmax",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Highest frequency shown (Hz).  [default: Nyquist]",
)
@click.option("--cmap", default="magma", show_default=True, help="Matplotlib colour map of the spectrograms.")
@click.option("--dpi", type=click.IntRange(10, 1200), default=100, show_default=True, help="Pixels per inch.")
@click.option(
    "--size",
    callback=_parse_size,
    default=None,
    help="Figure size in inches, WIDTHxHEIGHT (e.g. 12x8).  [default: depends on --what]",
)
@click.option("--title", default=None, help="Figure title.  [default: the input's file name]")
@_nmf_options()
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing figure.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def plot(
    input_path,
    output,
    what,
    model,
    spectrogram_only,
    freq_scale,
    db_range,
    fmax,
    cmap,
    dpi,
    size,
    title,
    force,
    quiet,
    debug,
    **params,
):
    """Draw INPUT (audio, or a model .npz saved by separate) and its factorization.

    \b
      nmfsep plot song.wav -m 4 -o song.png             overview: spectrogram, H, U, model, objective
      nmfsep plot song.wav --what components -o c.pdf   every component's masked spectrogram
      nmfsep plot separated/song/model.npz -o m.svg     a saved model, no refit
    """
    from .plot import Style, figure_format

    components, options = _pop_nmf_options(params)
    if spectrogram_only:
        what = "spectrogram"
    if output is None:
        output = Path(input_path.stem + ("" if what == "overview" else f".{what}") + ".png")
    try:
        Options(n_components=components, **options)
        figure_format(output)
        style = Style(
            freq_scale=freq_scale, db_range=db_range, fmax=fmax, cmap=cmap, dpi=dpi, size=size, title=title
        )
        _check_cmap(cmap)
        if model is not None and input_path.suffix.lower() == ".npz":
            raise ParameterError("--model goes with an audio INPUT; to draw a model alone, give it as INPUT")
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None

    def work(path, callback):
        from .plot import draw, save_figure
        from .separate import plot_data

        started = time.perf_counter()
        _check_new_file(output, force)  # before the analysis, not after it
        data = plot_data(
            path,
            n_components=components,
            model=model,
            spectrogram_only=what == "spectrogram",
            callback=callback,
            **options,
        )
        analysed = time.perf_counter()
        save_figure(draw(data, what, style), output, dpi=dpi, overwrite=force)
        return analysed - started, time.perf_counter() - analysed

    def summary(path, result):
        analysis, drawing = result
        return f"{path}: {what} -> {output} (analysis {analysis:.1f} s, drawing {drawing:.1f} s)"

    needs_fit = what != "spectrogram" and model is None and input_path.suffix.lower() != ".npz"
    total = options["max_iter"] * options["n_init"] if needs_fit else 0
    if needs_fit and not quiet:
        _announce_compiling(components, Options(n_components=components, **options).resolved_beta)
    try:
        ok = _guarded(input_path, work, summary, total, quiet, debug)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Model file (.npz).  [default: NAME.npz]",
)
@click.option(
    "--name", default=None, help="The source's name (its output file name).  [default: first file's name]"
)
@_nmf_options(components=16)
@click.option("-f", "--force", is_flag=True, help="Overwrite an existing model file.")
@click.option("-q", "--quiet", is_flag=True, help="Print errors only.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def learn(inputs, output, name, force, quiet, debug, **params):
    """Learn the bases of one source from clean examples (INPUTS are concatenated in time).

    \b
      nmfsep learn voice_a.wav voice_b.wav -m 16 --name voice -o voice.npz
      nmfsep separate mix.wav --source voice.npz --source piano.npz
    Use the same --n-fft, --hop, --power and divergence as the separation.
    """
    from .modelfile import save_model
    from .separate import learn as learn_model

    components, options = _pop_nmf_options(params)
    name = name or inputs[0].resolve().stem
    output = output or Path(f"{name}.npz")
    try:
        Options(n_components=components, **options)
        if output.suffix.lower() != ".npz":
            raise ParameterError(f"the model file must end in .npz, not {output.name!r}")
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None

    def work(path, callback):
        _check_new_file(output, force)
        model = learn_model(inputs, components, name=name, callback=callback, **options)
        save_model(output, model, overwrite=force)
        return model

    def summary(path, model):
        return (
            f"{name}: {model.bases.shape[1]} bases from {len(inputs)} file(s), "
            f"{model.settings['training_frames']} frames, divergence {model.objective[-1]:.4g} -> {output}"
        )

    total = options["max_iter"] * options["n_init"]
    if not quiet:
        _announce_compiling(components, Options(n_components=components, **options).resolved_beta)
    try:
        ok = _guarded(inputs[0], work, summary, total, quiet, debug)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


@main.command(name="eval")
@click.option(
    "--reference",
    "references",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Reference file or folder (repeatable).",
)
@click.option(
    "--estimate",
    "estimates",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Estimate file or folder (repeatable).",
)
@click.option(
    "--permute", is_flag=True, help="Match estimates to references by the best permutation, not by name."
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def evaluate_command(references, estimates, permute, as_json, debug):
    """SDR / SIR / SAR of estimates against references (mir_eval bss_eval).

    \b
      nmfsep eval --reference refs/ --estimate separated/mix/
      nmfsep eval --reference refs/ --estimate separated/mix/ --permute --json
    """
    import json as json_module

    from .evaluate import evaluate

    try:
        scores = evaluate(list(references), list(estimates), permute=permute)
    except ParameterError as exc:
        raise click.UsageError(str(exc)) from None
    except NmfsepError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    report = scores.as_dict()
    if as_json:
        click.echo(json_module.dumps(report))
        return
    width = max(len(row["reference"]) for row in report["sources"] + [{"reference": "mean"}])
    click.echo(f"{'source':{width}}  {'estimate':16}  {'SDR':>7}  {'SIR':>7}  {'SAR':>7}")

    def show(value):
        return f"{value:7.2f}" if value is not None else "    inf"

    for row in report["sources"]:
        click.echo(
            f"{row['reference']:{width}}  {row['estimate']:16}  {show(row['sdr'])}  {show(row['sir'])}  "
            f"{show(row['sar'])}"
        )
    mean = report["mean"]
    click.echo(f"{'mean':{width}}  {'':16}  {show(mean['sdr'])}  {show(mean['sir'])}  {show(mean['sar'])}")


def _check_cmap(name: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise click.ClickException(
            "nmfsep plot needs matplotlib, a dependency of nmfsep: pip install matplotlib"
        ) from None

    if name not in matplotlib.colormaps:
        raise ParameterError(f"--cmap {name!r} is not a matplotlib colour map (e.g. magma, viridis, gray_r)")


def _guarded(path, work, summary, total: int, quiet: bool, debug: bool) -> bool:
    """Run ``work(path, callback)`` with a progress bar, warnings and one-line errors; True on success."""
    bar = None
    if total > 0 and not quiet and sys.stderr.isatty():
        bar = click.progressbar(
            length=total, label=f"{path.name}", file=sys.stderr, show_eta=True, show_percent=True
        )
        bar.__enter__()
    callback = (lambda progress: bar.update(1)) if bar is not None else None
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = work(path, callback)
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
        click.echo(summary(path, result), err=True)
    return True


def _defaulted(name: str) -> bool:
    """True when the option was not given on the command line."""
    source = click.get_current_context().get_parameter_source(name)
    return source in (None, click.core.ParameterSource.DEFAULT)


def _check_collisions(tracks, components, out_dir, filename, fmt, save_model, plot_to=None) -> set[Path]:
    """Two inputs must not write the same file (song.wav and song.flac into {track}/...).

    Returns the folders the run would write into (to check that they are writable).
    """
    owner: dict[Path, Path] = {}
    folders: set[Path] = set()
    for track in tracks:
        outputs, model_path = planned_outputs(track.name, components, out_dir, filename, fmt, save_model)
        plot_path = None if plot_to is None else Path(plot_to.replace("{track}", track.name))
        for target in outputs + [p for p in (model_path, plot_path) if p is not None]:
            resolved = target.resolve()
            if resolved in owner:
                raise ParameterError(
                    f"{owner[resolved]} and {track.path} would both write {target}; use {{track}} in --filename"
                )
            owner[resolved] = track.path
            folders.add(target.parent)
    return folders


def _announce_compiling(rank: int, beta: float) -> None:
    """One line before a run that must first compile numba's kernels, so it does not look stuck."""
    from .nmf import kernels_need_compiling

    if kernels_need_compiling(rank, beta):
        click.echo(
            f"Compiling the numba kernels for this installation (once; about {COMPILE_SECONDS} s, later "
            "runs load them from numba's cache; `make install` does it ahead of time)...",
            err=True,
        )


def _check_new_file(path: Path, force: bool) -> None:
    """A figure or model file can be written: refused before the work, not after it."""
    if path.is_dir():
        raise OutputError("output path is a directory", path)
    if path.exists() and not force:
        raise OutputError("output exists; use --force to overwrite", path)
    check_folders_writable([path.parent])


def _close(bar, done: bool = False) -> None:
    if bar is not None:
        if done:  # converged early: show the work as complete
            bar.update(bar.length - bar.pos)
        bar.__exit__(None, None, None)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="nmfsep")
