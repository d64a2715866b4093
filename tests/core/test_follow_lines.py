"""``--follow`` shows build lines short: a time of day, wrapped to 80 columns."""

from __future__ import annotations

from gridrun.cli.follow import compact_build_line


def test_a_build_line_is_shown_with_its_time_and_wrapped_to_80_columns() -> None:
    line = (
        "[build] [2026-12-05T01:11:03.473617+00:00] Warning: inferred requirement added "
        "tensorboard: torch.utils.tensorboard imports tensorboard without requiring it"
    )
    shown = compact_build_line(line)
    assert shown[0].startswith("[build] 01:11:03 Warning: inferred requirement added")
    assert all(len(part) <= 80 for part in shown)
    assert all(part.startswith(" " * 17) for part in shown[1:])
    assert " ".join(part.strip() for part in shown).endswith("without requiring it")
    assert compact_build_line("[stdout] [2026-12-05T01:11:03+00:00] hi") == [
        "[stdout] [2026-12-05T01:11:03+00:00] hi"
    ]
