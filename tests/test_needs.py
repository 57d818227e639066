"""What a test may lack: a skip on a user's machine, a failure in CI, and only through need()."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from tests.support.needs import in_ci, need, need_module

TESTS = Path(__file__).resolve().parent
#: Ways to skip that would skip in CI too; tests go through need() instead.
BARE_SKIP = re.compile(r"pytest\.(skip|importorskip)\(|mark\.skip(if)?\b|\bxfail\b")


@pytest.mark.parametrize(("value", "ci"), [("1", True), ("true", True), ("0", False), ("", False), (None, False)])
def test_ci_is_told_by_the_ci_variable(monkeypatch, value, ci):
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert in_ci() is ci


def test_a_missing_prerequisite_skips_on_a_users_machine_and_fails_in_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    need(True, "nothing")
    with pytest.raises(pytest.skip.Exception, match="^wrk is not installed: apt-get install wrk$"):
        need(False, "wrk is not installed: apt-get install wrk")
    monkeypatch.setenv("CI", "1")
    need(True, "nothing")
    with pytest.raises(pytest.fail.Exception, match=r"^wrk is not installed: apt-get install wrk \[CI runs every test"):
        need(False, "wrk is not installed: apt-get install wrk")


def test_a_missing_module_names_itself_and_the_way_to_install_it(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert need_module("json").dumps([]) == "[]"
    with pytest.raises(pytest.skip.Exception, match=r"the Python package no_such_module_x cannot be imported .*make test"):
        need_module("no_such_module_x")
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="no_such_module_x"):
        need_module("no_such_module_x")


def test_every_skip_goes_through_need():
    """A bare ``pytest.skip`` or ``importorskip`` would skip silently in CI as well."""
    found = [
        f"{path.relative_to(TESTS)}:{number}: {line.strip()}"
        for path in sorted(TESTS.rglob("*.py"))
        if "node_modules" not in path.parts and path.name != "needs.py" and path != Path(__file__).resolve()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if BARE_SKIP.search(line)
    ]
    assert not found, "skip through tests.support.needs.need() or need_module() instead:\n" + "\n".join(found)
