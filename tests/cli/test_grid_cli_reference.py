"""Every command and option of Grid's CLI reference, walked through the real ``grid``.

The table (``grid_cli_reference.py``) says for each whether gridrun implements it,
maps it (with a note), or refuses it (with why). Here each row is held to that:

- an implemented or mapped command exists in ``grid``'s command tree and answers
  ``--help``; an implemented or mapped option is one of its command's options under
  every spelling the reference gives, and the row's Grid-style invocation parses
  (types, choices and checks included, nothing run);
- a refused command or option, typed as a Grid user would, exits non-zero with one
  line that says why: never click's "No such option" or its usage dump.

In-process (click's CliRunner) and parse-only, so the walk is fast and starts nothing;
what each command then does is tested beside it (test_grid_reference.py and others).
"""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from grid_cli_reference import ROWS, Row

from gridrun.cli import cli
from gridrun.home import GridHome

pytestmark = pytest.mark.unit

KINDS = ("implemented", "mapped", "refused")
GENERIC = ("No such option", "No such command", "Usage:", "Missing argument", "Traceback")


@pytest.fixture
def grid_user(grid_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder as a Grid user has one, as the current directory."""
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    for name in ("train.py", "train.jl", "Project.toml", "grid.yml", "Dockerfile"):
        (project / name).write_text("\n")
    monkeypatch.chdir(project)
    monkeypatch.setenv("COLUMNS", "250")
    return project


def resolve(words: list[str]) -> tuple[click.Command, click.Context, int]:
    """The command ``grid WORDS`` names, a context to parse it in, and how many of the
    words name it (the rest are its arguments: `delete cluster` is `delete` + KIND)."""
    ctx = click.Context(cli, info_name="grid", obj={"home": GridHome.from_env()})
    cmd: click.Command = cli
    used = 0
    for word in words:
        if not isinstance(cmd, click.Group):
            break
        sub = cmd.get_command(ctx, word)
        assert sub is not None, f"`grid {' '.join(words[: used + 1])}` is not a command"
        ctx = click.Context(sub, info_name=word, parent=ctx)
        cmd, used = sub, used + 1
    return cmd, ctx, used


def parses(row: Row) -> None:
    """The row's invocation parses: options, their values and arguments (nothing runs)."""
    argv = list(row.argv)
    words = row.command.split()
    assert argv[: len(words)] == words, f"{row.label}: argv must start with its command"
    if not words:
        with cli.make_context("grid", argv, resilient_parsing=False):
            return
    cmd, ctx, used = resolve(words)
    assert ctx.parent is not None
    with cmd.make_context(ctx.info_name, argv[used:], parent=ctx.parent):
        pass


def invoke(argv: tuple[str, ...]) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(argv), prog_name="grid", catch_exceptions=False)
    return result.exit_code, (result.stdout + result.stderr).strip()


def test_the_table_is_well_formed() -> None:
    seen: set[tuple[str, str | None]] = set()
    commands = {r.command for r in ROWS if r.option is None}
    for row in ROWS:
        assert row.kind in KINDS, row
        assert (row.command, row.option) not in seen, f"{row.label} twice"
        seen.add((row.command, row.option))
        if row.disposition.startswith(("mapped", "refused")):
            assert row.disposition.split(":", 1)[1].strip(), f"{row.label}: say how, or why"
        if row.kind == "refused":
            assert row.argv and row.says, f"{row.label}: a refusal needs argv and its words"
        if row.option is not None:
            assert row.argv, f"{row.label}: an option row needs an invocation"
            assert not row.command or row.command in commands, f"{row.label}: no command row"
        for word in range(1, len(row.command.split())):
            parent = " ".join(row.command.split()[:word])
            assert parent in commands, f"{row.label}: `grid {parent}` has no row"


COMMAND_ROWS = [r for r in ROWS if r.option is None]
OPTION_ROWS = [r for r in ROWS if r.option is not None]


@pytest.mark.parametrize("row", COMMAND_ROWS, ids=lambda r: r.label)
def test_every_command_of_grids_reference_answers(row: Row, grid_user: Path) -> None:
    used = resolve(row.command.split())[2]
    assert used >= 1
    code, out = invoke((*row.command.split()[:used], "--help"))
    assert code == 0 and out.startswith("Usage: grid"), out
    if row.kind == "refused":
        code, out = invoke(row.argv)
        assert_refused(row, code, out)
    elif row.argv:
        parses(row)


@pytest.mark.parametrize("row", OPTION_ROWS, ids=lambda r: r.label)
def test_every_option_of_grids_reference_answers(row: Row, grid_user: Path) -> None:
    if row.kind == "refused":
        code, out = invoke(row.argv)
        assert_refused(row, code, out)
        return
    cmd = resolve(row.command.split())[0] if row.command else cli
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}
    missing = [s for s in row.spellings if s not in known]
    assert not missing, f"{row.label}: `grid {row.command}` has no {', '.join(missing)}"
    parses(row)


def assert_refused(row: Row, code: int, out: str) -> None:
    assert code != 0, f"{row.label} was not refused: {out}"
    assert len(out.splitlines()) == 1, f"{row.label}: more than one line:\n{out}"
    assert not any(g in out for g in GENERIC), f"{row.label}: click's generic error: {out}"
    assert row.says in out, f"{row.label}: the line does not say why ({row.says!r}): {out}"


def test_the_walk_fails_on_an_option_gridrun_lacks(grid_user: Path) -> None:
    """The walk can fail: an option no command has, or one refused with click's error."""
    with pytest.raises(AssertionError, match="has no --frobnicate"):
        test_every_option_of_grids_reference_answers(
            Row("run", "--frobnicate", "implemented", ("run", "--frobnicate", "train.py")),
            grid_user,
        )
    with pytest.raises(AssertionError, match="click's generic error"):
        test_every_option_of_grids_reference_answers(
            Row("status", "--frobnicate", "refused: none", ("status", "--frobnicate"), "such"),
            grid_user,
        )
    with pytest.raises(click.NoSuchOption):
        parses(Row("history", "--global2", "implemented", ("history", "--global2")))


def test_the_counts() -> None:
    """The closing note's figures come from here; a row added or moved changes them."""
    counts = {k: sum(r.kind == k for r in ROWS) for k in KINDS}
    assert sum(counts.values()) == len(ROWS)
    print(counts)
