"""The guides' examples run as written: docs/your-own-model.md and docs/from-snntorch.md.

Each guide's ```python blocks run in order in one fresh interpreter, its ```bash blocks in a shell with
the venv's commands on PATH, both in a temporary directory; a failing example fails the test.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.S | re.M)


def blocks(guide: str, language: str) -> list[str]:
    return [code for lang, code in BLOCK.findall((DOCS / guide).read_text()) if lang == language]


def test_guides_have_examples() -> None:
    """The extraction finds what the guides hold (an empty list would make the tests below vacuous)."""
    assert len(blocks("your-own-model.md", "python")) >= 5
    assert len(blocks("your-own-model.md", "bash")) == 1
    assert len(blocks("from-snntorch.md", "python")) == 2


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def _run(args: list[str], cwd: Path, what: str) -> str:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{what} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("guide", ["your-own-model.md", "from-snntorch.md"])
def test_guide_python_examples_run(guide: str, tmp_path: Path) -> None:
    script = tmp_path / "guide.py"
    script.write_text("\n".join(blocks(guide, "python")))
    out = _run([sys.executable, str(script)], tmp_path, f"{guide}'s python examples")
    assert "Traceback" not in out


@pytest.mark.slow
def test_guide_command_line_example_runs(tmp_path: Path) -> None:
    (code,) = blocks("your-own-model.md", "bash")
    out = _run(["bash", "-euo", "pipefail", "-c", code], tmp_path, "your-own-model.md's shell example")
    assert (tmp_path / "cli.loihi" / "report.json").is_file()
    assert re.search(r"accuracy \d+\.\d%", out), out
