"""The `smartbranch` launcher: which CLI a command reaches, and how `demo` splits its arguments."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.demo import CONSOLE_PORT, split_args
from launch.main import _command, main


@pytest.mark.parametrize(("args", "expected"), [
    (["demo"], ["demo"]),
    (["--lang", "en", "demo", "--serve"], ["demo"]),
    (["-v", "edge", "run"], ["edge"]),
    ([], []),
])
def test_the_command_is_the_first_word_after_the_global_options(args: list[str], expected: list[str]) -> None:
    assert _command(args) == expected


def test_demo_arguments_for_the_console_are_taken_out_before_the_edge_cli_sees_them() -> None:
    edge, port, lang, workdir = split_args(["--lang", "en", "demo", "--console-port", "9100", "--workdir", "w",
                                            "--serve"])
    assert edge == ["--lang", "en", "demo", "--workdir", "w", "--serve"]
    assert (port, lang, workdir) == (9100, "en", Path("w"))
    assert split_args(["demo", "--no-console"])[1] is None
    assert split_args(["demo"])[1] == CONSOLE_PORT


def test_console_commands_reach_the_console_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["console", "--help"])
    assert exit_info.value.code == 0
    assert "central console" in capsys.readouterr().out


def test_other_commands_reach_the_edge_cli(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "--help"])
    assert exit_info.value.code == 0
    assert "list" in capsys.readouterr().out
