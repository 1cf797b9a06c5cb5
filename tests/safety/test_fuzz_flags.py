"""Fuzz every numeric flag of every command: whatever the value, a clean exit (a one-line error or success), never a
traceback."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from claim.cli import build_parser, main


def _numeric_flags() -> list[tuple[str, str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = []
    for command, subparser in sub.choices.items():
        for action in subparser._actions:
            kind = getattr(action.type, "__name__", "")
            if action.option_strings and (action.type in (int, float) or kind in ("integer", "number")):
                flags.append((command, max(action.option_strings, key=len)))
    return sorted(flags)


FLAGS = _numeric_flags()
# Values of every shape: numbers at and beyond every bound, non-finite spellings, text that is no number at all.
VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["nan", "-nan", "inf", "-inf", "1e400", "-0", "0", "1", "0x10", "1_000", "", " ", "abc", "½"]),
    st.text(max_size=6),
)


def test_every_command_has_checked_numeric_flags():
    commands = {command for command, _ in FLAGS}
    assert {"train-generator", "train-segmenter", "train-joint", "generate", "masks", "phantom", "split"} <= commands
    unchecked = []
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for command, subparser in sub.choices.items():
        unchecked += [f"{command} {a.option_strings}" for a in subparser._actions if a.type in (int, float)]
    assert not unchecked  # every numeric flag has a range-checked type


@pytest.mark.parametrize(("command", "flag"), FLAGS)
@settings(max_examples=25, deadline=None, derandomize=True,  # the same examples on every run (CI included)
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=VALUES)
@example(value="nan")
@example(value="inf")
@example(value="-1")
@example(value="0")
@example(value="2147483648")
@example(value="1180591620717411303424")
@example(value="1e400")
@example(value="abc")
def test_no_traceback_for_any_value(command, flag, value, tmp_path_factory, capsys):
    root = tmp_path_factory.mktemp("fuzz")
    missing = str(root / "missing")
    # Required arguments point at nothing, so a value that parses ends in a clean one-line input error, fast.
    required = {
        "generate": ["--model", missing, "--data", missing, "--masks", missing],
        "segment": ["--model", missing, "--data", missing],
        "evaluate": ["--pred", missing, "--gt", missing],
        "experiment": ["--train-data", missing, "--test-data", missing],
        "masks": ["--data", missing],
        "phantom": [],
        "demo": [],
        "info": ["--data", missing],
    }.get(command, ["--data", missing])
    if command in ("phantom", "demo"):
        required = ["--out", str(root / "file-in-the-way" / "out")]
        (root / "file-in-the-way").write_text("a file where the output folder's parent should be")
    else:
        required = [*required, "--out", str(root / "out")]
    try:
        code = main([command, *required, f"{flag}={value}"])
    except SystemExit as exc:  # argparse rejects the value: exit 2 with one line
        code = exc.code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert code in (0, 1, 2), (command, flag, value, err)
    assert len([line for line in err.splitlines() if "error:" in line]) <= 1
