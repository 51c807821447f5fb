"""The README documents every setting the services read, and its two commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from scripts.settings_table import ALL_CONFIGS
from services.common.config import env_names

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    missing = sorted(name for name in env_names(*ALL_CONFIGS) if f"`{name}`" not in README)
    assert not missing, f"README lacks: {missing} (python scripts/settings_table.py prints them)"


def test_the_two_commands_are_make_targets() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for command in ("make demo", "make test"):
        assert command in README
        assert re.search(rf"^{command.split()[1]}:", makefile, re.M)
    assert "make test" in (ROOT / ".ci" / "run").read_text()
