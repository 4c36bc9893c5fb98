"""One rule for tests that need a tool outside Python (Chromium, the Serverless CLI, node):
where the README's test command set the machine up (`infra/test.sh` exports
AUTOCROP_TOOLS_INSTALLED=1) or CI says so, a missing tool fails the test with what to run;
elsewhere (a developer running one file) the test is skipped with the same reason."""

from __future__ import annotations

import os

import pytest


def tools_promised() -> bool:
    """Whether the setup that installs every tool has run (so none may be missing)."""
    return bool(os.environ.get("CI") or os.environ.get("AUTOCROP_TOOLS_INSTALLED"))


def require(present: bool, why: str, module: bool = False) -> None:
    """Fail (tools promised) or skip (not) with `why` unless `present`."""
    if present:
        return
    if tools_promised():
        pytest.fail(f"{why}: the setup should have installed it", pytrace=False)
    pytest.skip(why, allow_module_level=module)
