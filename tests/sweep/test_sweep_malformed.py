"""Values that meant a sweep but are malformed are refused; escaped values pass literally."""

from __future__ import annotations

import sys

import pytest

from gridrun.errors import SweepSyntaxError
from gridrun.sweep import count_experiments, expand

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("[0.1 0.01]", "missing comma between '0.1' and '0.01'; write [0.1, 0.01]"),
        ("[1 2, 3]", "missing comma between '1' and '2'"),
        ("[hot dog]", "missing comma between 'hot' and 'dog'"),
        ("[]", "empty list"),
        ("[ ]", "empty list"),
        ("{'a': 1}", "a dict is not a sweep value"),
        ('{"lr": [0.1, 0.01]}', "a dict is not a sweep value"),
        ("{unbalanced", "unbalanced braces"),
        ("[1, 2", "unclosed list"),
        ("[[1]", "unclosed list"),
        ("[not closed", "unclosed list"),
        ("[a] [b]", "unexpected text after the closing ']'"),
        ("[1, 2]]", "unexpected text after the closing ']'"),
        ("range(1, 10", "unclosed call"),
        ("range(1, 10, 0)", "step must not be zero"),
        ("uniform(0, 1)", "uniform() takes 3 arguments"),
        ("rnage(1, 5)", "unknown sweep function rnage() (not range())"),
        ("linspce(0, 1, 5)", "(not linspace())"),
        ("range(10**400)", "not a number"),
        ("range(9**9**9)", "not a number"),
    ],
)
def test_malformed_sweep_is_refused_naming_the_argument(value: str, problem: str) -> None:
    for count in (True, False):
        with pytest.raises(SweepSyntaxError) as info:
            if count:
                count_experiments(["--lr", value])
            else:
                expand(["--lr", value])
        assert info.value.message.startswith(f'--lr "{value}": '), info.value.message
        assert problem in info.value.message
        assert "backslash" in str(info.value)  # the hint says how to pass it literally


def test_key_value_form_is_named_too() -> None:
    with pytest.raises(SweepSyntaxError, match=r'--lr="\[0.1 0.01\]"'):
        expand(["--lr=[0.1 0.01]"])


def test_positional_is_named() -> None:
    with pytest.raises(SweepSyntaxError, match='positional arg0 "\\[\\]"'):
        expand(["[]"])


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("\\[0.1 0.01]", "[0.1 0.01]"),
        ("\\[]", "[]"),
        ("\\{'a': 1}", "{'a': 1}"),
        ("\\range(1, 3)", "range(1, 3)"),
        ("\\\\[1, 2]", "\\[1, 2]"),
    ],
)
def test_backslash_passes_a_value_literally(value: str, literal: str) -> None:
    for args, expected in (
        (["--x", value, "pos"], ["--x", literal, "pos"]),
        ([f"--x={value}"], [f"--x={literal}"]),
    ):
        assert count_experiments(args) == 1
        (exp,) = expand(args)
        assert exp.argv == expected and exp.params == {}
        (none,) = expand(args, strategy="none")
        assert none.argv == expected


def test_other_backslashes_are_untouched() -> None:
    (exp,) = expand(["--path", "\\\\server\\share", "--re", "\\d+"])
    assert exp.argv == ["--path", "\\\\server\\share", "--re", "\\d+"]


def test_bare_words_with_spaces_stay_when_commas_show_the_intent() -> None:
    assert [e.argv[1] for e in expand(["--food", "[hot dog, pizza]"])] == ["hot dog", "pizza"]


def test_count_is_computed_without_building_experiments() -> None:
    # Counted in Python lines executed, not seconds, so that a loaded machine cannot
    # fail it: building even a million experiments runs far more lines than this.
    lines = 0

    def trace(frame, event, arg):  # type: ignore[no-untyped-def]
        nonlocal lines
        if event == "line":
            lines += 1
            if lines > 200_000:
                raise AssertionError("count_experiments builds the experiments")
        return trace

    sys.settrace(trace)
    try:
        counts = [
            count_experiments(["--i", "range(10**12)"]),
            count_experiments(["--i", "range(10**6)", "--j", "range(10**6)"]),
            count_experiments(["--i", "arange(0, 10**12)"]),
        ]
    finally:
        sys.settrace(None)
    assert counts == [10**12] * 3


def test_arithmetic_arguments() -> None:
    assert [e.argv[1] for e in expand(["--n", "range(2**2, 3*2)"])] == ["4", "5"]
    assert [e.argv[1] for e in expand(["--n", "linspace(0, 1/2, 3)"])] == ["0.0", "0.25", "0.5"]
