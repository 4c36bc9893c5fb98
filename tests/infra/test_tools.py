"""The rule for tests that need outside tools (tests/tools.py): a missing tool fails once the
README's setup has run, and only skips where it has not."""

from __future__ import annotations

import pytest

from tests import tools


def test_a_missing_tool_fails_after_the_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setenv("AUTOCROP_TOOLS_INSTALLED", "1")
    with pytest.raises(pytest.fail.Exception, match="should have installed"):
        tools.require(False, "needs a tool")
    tools.require(True, "needs a tool")  # present: nothing happens


def test_a_missing_tool_skips_without_the_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("AUTOCROP_TOOLS_INSTALLED", raising=False)
    with pytest.raises(pytest.skip.Exception, match="needs a tool"):
        tools.require(False, "needs a tool")
