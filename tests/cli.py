"""The command line as the CLI tests call it: `main` in this process, on a config file of the test's."""

from __future__ import annotations

from collections.abc import Callable

from budgetwatch.cli import main

DEFAULT_CONFIG = "data_dir: data\n"


def command_line(tmp_path, capsys, monkeypatch) -> Callable[..., tuple[int, str, str]]:
    """``run(*argv, config=TEXT)``: budgetwatch with `argv` on a config.yaml of `config` (default
    :data:`DEFAULT_CONFIG`) in `tmp_path`, the working folder; (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BUDGETWATCH_DATABASE_URL", raising=False)

    def run(*argv: str, config: str = "") -> tuple[int, str, str]:
        path = tmp_path / "config.yaml"
        path.write_text(config or DEFAULT_CONFIG, encoding="utf-8")
        code = main(["--config", str(path), *argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def one_line(err: str) -> str:
    """The one line a command said on stderr (no traceback)."""
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]
