"""One-line failure messages from uv's output (samples captured from uv 0.13.9)."""

from __future__ import annotations

import pytest

from gridrun.envs.uvoutput import failure_message, last_meaningful, requirement_name

pytestmark = pytest.mark.unit

HEAD = ["Using Python 3.11.7 environment at: .tmp-k-1", "Resolved 1 package in 1ms"]

SAMPLES = [
    (
        [
            "error: No solution found when resolving dependencies",
            "  cause: Because nonexistent-pkg-xyz was not found in the package registry and you"
            " require nonexistent-pkg-xyz, we can conclude that your requirements are"
            " unsatisfiable.",
        ],
        "Could not install 'nonexistent-pkg-xyz': not found in the package index.",
    ),
    (
        [
            "  × No solution found when resolving dependencies:",
            "  ╰─▶ Because gridfoo was not found in the provided package locations and you"
            " require gridfoo, we can conclude that your requirements are unsatisfiable.",
        ],
        "Could not install 'gridfoo': not found in the package index.",
    ),
    (
        [
            "error: No solution found when resolving dependencies",
            "  cause: Because only six<=1.17.0 is available and you require six>=99, we can"
            " conclude that your requirements are unsatisfiable.",
        ],
        "Could not install 'six': no version satisfies six>=99 (only six<=1.17.0 is available).",
    ),
    (
        [
            "error: No solution found when resolving dependencies",
            "  cause: Because there is no version of numpy==1.0.0 and you require"
            " numpy==1.0.0, we can conclude that your requirements are unsatisfiable.",
        ],
        "Could not install 'numpy': there is no version numpy==1.0.0.",
    ),
    (
        [
            "   Building badpkg @ file:///tmp/exp/badpkg",
            "error: Failed to build `badpkg @ file:///tmp/exp/badpkg`",
            "  cause: The build backend returned an error",
            "  cause: Call to `backend.build_wheel` failed (exit status: 1)",
            "",
            "         [stderr]",
            "         Traceback (most recent call last):",
            '           File "/tmp/exp/badpkg/backend.py", line 2, in build_wheel',
            '             raise RuntimeError("compiler exploded")',
            "         RuntimeError: compiler exploded",
            "",
            "hint: Build failures usually indicate a problem with the package or the build"
            " environment",
        ],
        "Could not install 'badpkg': build failed: RuntimeError: compiler exploded.",
    ),
    (
        [
            "error: Couldn't parse requirement in `r.txt` at position 12",
            '  cause: no such comparison operator "!!", must be one of ~= == != <= >= < > ===',
            "         req!!",
            "            ^^",
        ],
        "Couldn't parse requirement in `r.txt` at position 12: no such comparison operator"
        ' "!!", must be one of ~= == != <= >= < > ===.',
    ),
    (
        [
            "error: Git operation failed",
            "  cause: failed to clone into: /root/.cache/uv/git-v2/db/332af4028b2840dc",
            "  cause: process didn't exit successfully: `/usr/bin/git fetch --force"
            " 'https://example.invalid/x.git'` (exit status: 128)",
            "         --- stderr",
            "         fatal: unable to access 'https://example.invalid/x.git/': Could not"
            " resolve host: example.invalid",
        ],
        "Git operation failed: fatal: unable to access 'https://example.invalid/x.git/':"
        " Could not resolve host: example.invalid.",
    ),
    (
        [
            "  × No solution found when resolving dependencies:",
            "  ╰─▶ Because foo==1.0 depends on bar<2 and you require bar>=2, we can conclude"
            " that your requirements are unsatisfiable.",
        ],
        "No solution found when resolving dependencies: Because foo==1.0 depends on bar<2"
        " and you require bar>=2, we can conclude that your requirements are unsatisfiable.",
    ),
    (
        [
            "error: Distribution not found at: file:///tmp/exp/nonexistdir",
        ],
        "Distribution not found at: file:///tmp/exp/nonexistdir.",
    ),
]


@pytest.mark.parametrize(("lines", "expected"), SAMPLES)
def test_failure_messages(lines: list[str], expected: str) -> None:
    assert failure_message([*HEAD, *lines]) == expected


def test_no_output_still_gives_a_reason() -> None:
    assert last_meaningful([]) == "uv failed without output"
    assert last_meaningful(["", "hint: try again", "   ^^^"]) == "uv failed without output"


def test_long_lines_are_shortened() -> None:
    assert len(last_meaningful(["error: " + "x" * 1000])) == 300


def test_requirement_names() -> None:
    assert requirement_name("badpkg @ file:///tmp/x") == "badpkg"
    assert requirement_name("Foo_Bar[extra]>=1") == "Foo_Bar"
    assert requirement_name("https://host/pkg.whl") == "https://host/pkg.whl"


def test_failing_dependency_is_traced_to_the_requirement_that_pulled_it_in() -> None:
    from gridrun.envs.uvoutput import failing_line

    lines = [
        "  × Failed to build `pyobjc-core==13.0`",
        "  ╰─▶ The build backend returned an error",
        "      hint: `pyobjc-core` (v13.0) was included because `pyobjc-framework-cocoa` "
        "(v13.0) depends on `pyobjc-core`",
    ]
    assert (
        failing_line(lines, ["six==1.16.0", "pyobjc-framework-Cocoa"]) == "pyobjc-framework-Cocoa"
    )
    assert failing_line(lines, ["six"]) is None


def test_uv_and_pyenv_chatter_is_dropped_and_the_rest_kept() -> None:
    from gridrun.envs.uvoutput import Chatter

    lines = [
        "Using CPython 3.11.7 interpreter at: /usr/bin/python3.11",
        "pyenv: python3.10: command not found",
        "",
        "The `python3.10' command exists in these Python versions:",
        "  3.10.13",
        "",
        "Note: See 'pyenv help global' for tips on allowing both",
        "      python2 and python3 to be found.",
        "Creating virtual environment with seed packages at: .tmp-abc-1234",
        " + pip==26.3",
        "Activate with: source .tmp-abc-1234/bin/activate",
        "Resolved 3 packages in 10ms",
    ]
    chatter = Chatter()
    assert [line for line in lines if not chatter.drop(line)] == [
        "Using CPython 3.11.7 interpreter at: /usr/bin/python3.11",
        "Creating virtual environment with seed packages at: .tmp-abc-1234",
        " + pip==26.3",
        "Resolved 3 packages in 10ms",
    ]
