"""What a test needs from the machine it runs on: a skip on a user's machine, a failure in CI.

A user's clone may lack a browser, a tool or the real data, and its tests should still pass,
skipping what they cannot run with a message saying what is missing and how to get it. CI
must run every test: there, the same missing prerequisite fails the run, so that a test never
stops running unnoticed. Every test that may lack something says so through :func:`need`.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

#: How a user gets the optional Python packages the tests use.
DEV_EXTRA = "make test installs them (the dev extra: .venv/bin/python -m pip install -e '.[dev]')"


def in_ci() -> bool:
    """Whether this is a CI run (``CI`` set, as ``.ci/run`` and CI services do, and not ``0``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def need(condition: object, missing: str) -> None:
    """Go on when ``condition`` holds; else stop the calling test (or test module) because of
    ``missing``, which names what is missing and how to get it: a skip on a user's machine, a
    failure under ``CI``."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{missing} [CI runs every test: a missing prerequisite fails it]", pytrace=False)
    pytest.skip(missing, allow_module_level=True)


def need_module(name: str, how: str = DEV_EXTRA) -> ModuleType:
    """``pytest.importorskip`` through :func:`need`: the module, or a skip (a failure in CI)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        need(False, f"the Python package {name} cannot be imported ({exc}); {how}")
        raise  # not reached: need() skipped or failed
