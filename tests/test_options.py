"""One source of truth for options: every CLI default is the Python API's default."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from click.testing import CliRunner

import nmfsep
from nmfsep import files, plot
from nmfsep.cli import main
from nmfsep.options import BY_NAME, DEFAULTS, FIGURE_DEFAULTS, OPTIONS, Options

#: The API functions whose keyword arguments each CLI command exposes.
API = {
    "separate": [nmfsep.separate, files.prepare],
    "plot": [nmfsep.plot_data, nmfsep.separate],
    "learn": [nmfsep.learn, nmfsep.separate],
}


def _cli_defaults(command: str) -> dict:
    return {param.name: param.default for param in main.commands[command].params if param.name in BY_NAME}


@pytest.mark.parametrize("command", sorted(API))
def test_every_cli_default_is_the_api_default(command):
    cli = _cli_defaults(command)
    assert cli, command
    checked = 0
    for name, value in cli.items():
        assert value == BY_NAME[name].default_for(command), name
        # an option whose default differs by command (-m of learn) is checked against that command's API
        own = dict(BY_NAME[name].per_command)
        for function in API[command][:1] if command in own else API[command]:
            parameter = inspect.signature(function).parameters.get(name)
            if parameter is not None and parameter.default is not inspect.Parameter.empty:
                assert parameter.default == value, (command, function.__name__, name)
                checked += 1
    assert checked >= 5  # the comparison really reached the API


def test_the_options_dataclass_and_the_figure_style_use_the_same_defaults():
    for field in dataclasses.fields(Options):
        assert field.default == DEFAULTS[field.name], field.name
    for field in dataclasses.fields(plot.Style):
        assert field.default == FIGURE_DEFAULTS[field.name], field.name


def test_every_separation_option_is_offered_by_the_cli():
    offered = {param.name for command in API for param in main.commands[command].params}
    assert {option.name for option in OPTIONS} <= offered


def test_options_not_given_stay_none_until_settled():
    """A source model (or learn) decides what the run did not give; the fallbacks the rest."""
    options = Options()
    assert (options.divergence, options.window, options.power, options.mask_power, options.sparsity) == (
        None,
    ) * 5
    settled = options.settled()
    assert (settled.window, settled.power, settled.mask_power, settled.sparsity) == ("hann", 1.0, 1.0, 0.0)
    assert settled.resolved_beta == 1.0 and settled.settled() == settled
    given = Options(mask_power=3.0, divergence="is").settled(mask_power=2.0, beta=1.0, n_fft=8192)
    assert given.mask_power == 3.0 and given.resolved_beta == 0.0 and given.n_fft == 8192
    assert Options().settled(beta=0.5).resolved_beta == 0.5


def test_help_shows_the_effective_defaults():
    learn = CliRunner().invoke(main, ["learn", "--help"], terminal_width=200).output
    separate = CliRunner().invoke(main, ["separate", "--help"], terminal_width=200).output
    assert "[default: 64; x>=1]" in learn and "[default: 2.0; x>0]" in learn
    assert "~372 ms: 8192 at 22.05 kHz" in learn
    assert "[default: (1, or the --source models' (2 from learn)); x>0]" in separate
    assert "with --source the models'" in separate
