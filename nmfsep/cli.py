"""Command-line interface: declares options, calls the planner and the pipeline, reports.

No maths and no checks of its own: the options come from :data:`nmfsep.options.OPTIONS`, the checks
from :mod:`nmfsep.plan` and the library, whose errors it prints with its own flag names. Exit codes:
0 success; 1 a file could not be processed (the others still are); 2 usage error (nothing was
started); 130/143 interrupted.
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import click

from .audio import LOSSY_FORMATS
from .errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, NmfsepError, ParameterError, render
from .options import ALL_OPTIONS, FIGURE_DEFAULTS, Options, parse_size, spell_flag
from .plan import check_new_file
from .version import __version__

#: How long the first run's numba compilation takes (KL, rank 4, float32: the rank-4 family with its
#: one-pass iteration kernel; measured 72 s on 2 busy cores, 22-43 s before that kernel).
COMPILE_SECONDS = "30-75"

_TYPES = {"int": int, "float": float, "str": str}


def _click_option(option, command: str):
    """The click declaration of an :class:`nmfsep.options.Option` (parameter named as in the API)."""
    default = option.default_for(command)
    if option.kind == "flag":
        return click.option(*option.flags, option.name, is_flag=True, default=default, help=option.help)
    if option.kind == "choice":
        kind = click.Choice(option.choices, case_sensitive=False)
    elif option.kind == "path":
        kind = click.Path(
            path_type=Path, file_okay=option.name != "out_dir", dir_okay=option.name == "out_dir"
        )
    elif option.low is not None or option.high is not None:
        ranged = click.IntRange if option.kind == "int" else click.FloatRange
        kind = ranged(min=option.low, max=option.high, min_open=option.low_open)
    else:
        kind = _TYPES[option.kind]
    return click.option(
        *option.flags,
        option.name,
        type=kind,
        default=default,
        show_default=option.shown_for(command) if default is None else default != (),
        multiple=option.multiple,
        help=option.help,
    )


def _options_of(command: str):
    """Decorator: every option of OPTIONS that ``command`` offers."""

    def decorate(function):
        for option in reversed([o for o in ALL_OPTIONS if command in o.commands]):
            function = _click_option(option, command)(function)
        return function

    return decorate


def _reporting(function):
    """Decorator: ``-q/--quiet`` and ``--debug``."""
    function = click.option("--debug", is_flag=True, help="Show tracebacks (also a worker's).")(function)
    return click.option("-q", "--quiet", is_flag=True, help="Print errors only.")(function)


def _message(error: NmfsepError) -> str:
    return error.render(spell_flag)


def _fail(error: NmfsepError, debug: bool = False, before_work: bool = True) -> None:
    """Exit with the error: a usage error (2) for bad options found before any work, else a
    processing error (1)."""
    if before_work and isinstance(error, ParameterError):
        raise click.UsageError(_message(error))
    if debug:
        import traceback

        traceback.print_exception(error)
    click.echo(f"Error: {_message(error)}", err=True)
    sys.exit(EXIT_FAILED)


class _Bar:
    """Advances a click progress bar by one per call; drawn complete at the end only if ``finished``."""

    def __init__(self, bar) -> None:
        self.bar, self.finished = bar, False

    def __call__(self, *_) -> None:
        self.bar.update(1)


@contextmanager
def _progress(length: int, label: str, enabled: bool) -> Iterator[_Bar | None]:
    """A progress bar on stderr (only on a terminal), or None."""
    if not enabled or length <= 0:
        yield None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr, show_eta=True, show_pos=True) as bar:
        handle = _Bar(bar)
        yield handle
        if handle.finished:  # converged early: the work is complete (not after a failure or a skip)
            bar.update(bar.length - bar.pos)


def _announce_compiling(rank: int, beta: float, spatial: bool = False, inputs=None, options=None) -> None:
    """One line before a run that must first compile numba's kernels, so it does not look stuck
    (``spatial``: the run may use the stereo spatial model's kernel too). With ``inputs`` (and
    their ``options``), nothing is checked when every input is small enough for the numpy kernel:
    the check itself imports numba, half a second that such a run never needs."""
    from .nmf import kernels_need_compiling

    sizes = {None} if inputs is None else {_spectrogram_size(path, options) for path in inputs}
    if any(kernels_need_compiling(rank, beta, size=size) for size in sizes) or (
        spatial and kernels_need_compiling(0, family="spatial")
    ):
        click.echo(
            f"Compiling the numba kernels for this installation (once; about {COMPILE_SECONDS} s, later "
            "runs load them from numba's cache; `make install` does it ahead of time)...",
            err=True,
        )


def _spectrogram_size(path, options) -> int | None:
    """K x N of the spectrogram a separation of ``path`` factorizes (None when it cannot tell)."""
    import soundfile

    from .spectrogram import n_frames

    try:
        info = soundfile.info(os.fspath(path))
        n_samples = info.frames * (options.sr or info.samplerate) / info.samplerate
        return n_frames(int(n_samples), options.stft) * options.stft.n_bins
    except Exception:  # noqa: BLE001 -- a hint only: an unreadable file fails later, on its own
        return None


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="nmfsep")
def main() -> None:
    """Separate audio into its parts with Non-negative Matrix Factorization."""


@main.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@_options_of("separate")
@click.option(
    "--plot", is_flag=True, help="Also draw the overview figure next to the components (overview.png)."
)
@click.option(
    "--from-list", type=click.File("r"), help="Read more input paths from this file ('-': stdin; # comments)."
)
@click.option(
    "-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True, help="Files in parallel."
)
@click.option(
    "--scheduler", help="Run on this Dask distributed scheduler (e.g. tcp://head:8786); needs nmfsep[dask]."
)
@click.option(
    "--manifest", type=click.Path(path_type=Path, dir_okay=False), help="Write a JSON record of every input."
)
@click.option("--json", "json_lines", is_flag=True, help="Print one JSON object per input to stdout.")
@_reporting
def separate(inputs, plot, from_list, jobs, scheduler, manifest, json_lines, quiet, debug, **settings):
    """Separate INPUTS (files or folders) into M components, one audio file per component.

    \b
    Components are ordered by spectral centroid, low to high, and sum back to the input:
      nmfsep separate song.wav -m 4   ->  separated/song/c1.wav ... c4.wav
      nmfsep separate music/ -r -m 4 --jobs 2 --skip-existing --manifest run.json
      find . -name '*.flac' | nmfsep separate --from-list - -m 4
      nmfsep separate mix.wav --source voice.npz --source piano.npz   ->  voice.wav, piano.wav
      nmfsep separate mix.wav --sources 2                             ->  s1.wav, s2.wav
      (stereo input: sources placed in the stereo field, s1 leftmost; --mono for grouped components)

    Exit status: 0 all done (or skipped), 1 at least one input failed (the others are done), 2 usage
    error (nothing started), 130/143 interrupted by SIGINT/SIGTERM (the manifest is still written).
    """
    from . import batch
    from .plan import plan_separation

    started = time.time()
    if not inputs and from_list is None:
        raise click.UsageError("no INPUTS given (files, folders or --from-list)")
    try:
        run = plan_separation(
            inputs,
            from_list=list(from_list) if from_list is not None else [],
            plot=plot,
            also_writes=[manifest] if manifest is not None else [],
            **settings,
        )
    except NmfsepError as error:  # nothing was started: 2 for usage, 1 for files that cannot be used
        _fail(error)
    settings = run.settings
    if not quiet:
        _announce_compiling(
            run.rank,
            run.options.resolved_beta,
            spatial=run.options.n_sources is not None
            and not run.options.mono
            and not run.settings["sources"],
            inputs=[track.path for track in run.tracks[:64]],  # a hint: the first ones tell
            options=run.options,
        )
    tty = sys.stderr.isatty() and not quiet
    per_file = tty and len(run.tracks) == 1 and jobs == 1 and not scheduler
    iterations = settings["max_iter"] * settings["n_init"]
    lossy = settings["format"] in LOSSY_FORMATS  # the parts no longer sum exactly to the input

    with _progress(len(run.tracks), "files", tty and not per_file) as advance, ExitStack() as file_bar:
        bars: list[_Bar] = []

        def callback_for(path):  # one file in-process on a terminal: a bar over its iterations
            if per_file:
                bars.append(file_bar.enter_context(_progress(iterations, path.name, True)))
                return bars[-1]
            return None

        def on_outcome(outcome):
            for bar in bars:
                bar.finished = outcome.status == "done"
            bars.clear()
            file_bar.close()
            if advance is not None:
                click.echo("\r\033[K", nl=False, err=True)  # clear the bar's line before printing
            for line in batch.report_lines(outcome, quiet=quiet, debug=debug, lossy=lossy):
                click.echo(line, err=True)
            if json_lines:
                click.echo(batch.json_line(outcome))
            if advance is not None:
                advance()

        try:
            outcomes, stopped = batch.run_batch(
                run.tracks,
                settings,
                jobs=jobs,
                scheduler=scheduler,
                on_outcome=on_outcome,
                callback_for=callback_for,
                spelling=spell_flag,
            )
        except NmfsepError as error:  # the scheduler could not be reached: nothing was started
            _fail(error)
    if stopped is not None:
        click.echo(f"Interrupted by {batch.signal.Signals(stopped).name}.", err=True)
    counts = batch.summary_counts(outcomes)
    if len(run.tracks) > 1 and not quiet or stopped is not None:
        click.echo(f"{counts['done']} done, {counts['skipped']} skipped, {counts['failed']} failed", err=True)
    code = batch.exit_code(outcomes, stopped)
    if manifest is not None:
        try:
            batch.write_manifest(manifest, outcomes, argv=sys.argv, started=started, stopped=stopped)
        except NmfsepError as error:
            click.echo(f"Error: manifest not written: {_message(error)}", err=True)
            code = EXIT_FAILED if stopped is None else code
    sys.exit(code)


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Figure file; the format comes from the suffix: .png, .pdf or .svg.  [default: INPUT.png]")  # fmt: skip
@click.option("--model", type=click.Path(path_type=Path, dir_okay=False),
              help="Draw this saved model (from separate --save-model) of INPUT instead of refitting.")  # fmt: skip
@click.option(
    "--spectrogram-only", is_flag=True, help="Only the input spectrogram (same as --what spectrogram)."
)
@_options_of("plot")
@_reporting
def plot(input_path, output, model, spectrogram_only, quiet, debug, **settings):
    """Draw INPUT (audio, or a model .npz saved by separate) and its factorization.

    \b
      nmfsep plot song.wav -m 4 -o song.png             overview: spectrogram, H, U, model, objective
      nmfsep plot song.wav --what components -o c.pdf   every component's masked spectrogram
      nmfsep plot separated/song/model.npz -o m.svg     a saved model, no refit
    """
    from .figures import needs_factorization, plot_data
    from .plot import Style, draw, figure_format, save_figure

    figure = {key: settings.pop(key) for key in FIGURE_DEFAULTS}
    what = figure.pop("what")
    what = "spectrogram" if spectrogram_only else what
    output = output or Path(input_path.stem + ("" if what == "overview" else f".{what}") + ".png")
    force = settings.pop("force")
    try:
        options = Options.from_keywords(**settings)
        figure_format(output)
        style = Style(**{**figure, "size": parse_size(figure["size"])})
        needs_fit = needs_factorization(input_path, model, what)
    except NmfsepError as error:
        _fail(error)

    def work(callback):
        check_new_file(output, force)  # before the analysis, not after it
        started = time.perf_counter()
        data = plot_data(
            input_path, model=model, spectrogram_only=what == "spectrogram", callback=callback, **settings
        )
        analysed = time.perf_counter()
        save_figure(draw(data, what, style), output, dpi=style.dpi, overwrite=force)
        drawn = time.perf_counter() - analysed
        return (
            f"{input_path}: {what} -> {output} (analysis {analysed - started:.1f} s, drawing {drawn:.1f} s)"
        )

    if needs_fit and not quiet:
        _announce_compiling(options.n_components, options.resolved_beta, inputs=[input_path], options=options)
    _guarded(input_path, work, options.max_iter * options.n_init if needs_fit else 0, quiet, debug)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Model file (.npz).  [default: NAME.npz]",
)
@_options_of("learn")
@_reporting
def learn(inputs, output, name, quiet, debug, **settings):
    """Learn the bases of one source from clean examples (INPUTS are concatenated in time).

    \b
      nmfsep learn voice_a.wav voice_b.wav --name voice -o voice.npz
      nmfsep separate mix.wav --source voice.npz --source piano.npz

    The model records its STFT, power, divergence, --mask-power and --sparsity: separate uses them,
    with no flag to repeat.
    """
    from .pipeline import learn as learn_model
    from .sources import check_source, save_model

    force = settings.pop("force")
    name = name or inputs[0].resolve().stem
    output = output or Path(f"{name}.npz")
    try:
        options = Options.from_keywords(**settings)
        check_source(name, output)
    except NmfsepError as error:
        _fail(error)

    def work(callback):
        check_new_file(output, force)
        model = learn_model(inputs, name=name, callback=callback, **settings)
        save_model(output, model, overwrite=force)
        stft = model.settings["stft"]
        return (
            f"{name}: {model.bases.shape[1]} bases from {len(inputs)} file(s), "
            f"{model.settings['training_frames']} frames of {stft['n_fft']} samples "
            f"({1000 * stft['n_fft'] / model.sample_rate:.0f} ms), "
            f"divergence {model.objective[-1]:.4g} -> {output}"
        )

    if not quiet:
        _announce_compiling(options.n_components, options.resolved_beta)
    _guarded(inputs[0], work, options.max_iter * options.n_init, quiet, debug)


@main.command(name="eval")
@click.option("--reference", "references", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Reference file or folder (repeatable).")  # fmt: skip
@click.option("--estimate", "estimates", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Estimate file or folder (repeatable).")  # fmt: skip
@_options_of("eval")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
def evaluate_command(references, estimates, permute, as_json, debug):
    """SDR / SIR / SAR of estimates against references (mir_eval bss_eval).

    \b
      nmfsep eval --reference refs/ --estimate separated/mix/
      nmfsep eval --reference refs/ --estimate separated/mix/ --permute --json
    """
    import json

    from .scoring import evaluate

    try:
        scores = evaluate(list(references), list(estimates), permute=permute)
    except NmfsepError as error:
        _fail(error, debug)
    click.echo(json.dumps(scores.as_dict()) if as_json else scores.table())


def _guarded(path: Path, work, total: int, quiet: bool, debug: bool) -> None:
    """Run ``work(callback)`` with a progress bar, warnings and one-line errors, then exit."""
    try:
        with _progress(total, path.name, not quiet and sys.stderr.isatty()) as callback:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                summary = work(callback)
            if callback is not None:
                callback.finished = True
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except NmfsepError as error:
        _fail(error, debug, before_work=False)
    except Exception as error:  # an unexpected failure: one line (a traceback with --debug)
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(f"Error: unexpected {type(error).__name__}: {error} ({path})", err=True)
        sys.exit(EXIT_FAILED)
    if not quiet:
        for warning in caught:
            if not issubclass(warning.category, (DeprecationWarning, PendingDeprecationWarning)):
                click.echo(f"Warning: {render(str(warning.message), spell_flag)} ({path})", err=True)
        click.echo(summary, err=True)
    sys.exit(EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    main(prog_name="nmfsep")
