"""Advice in error messages, in the words of the way moviegenre was run.

* A message that says to install something gives the pip of the Python running moviegenre
  (``.venv/bin/python -m pip install ...`` after ``make serve``): a bare ``pip`` may belong to
  another environment, and installing there changes nothing here.
* A message that says to pass a data file gives ``make serve DATA=PATH`` when ``make serve``
  started this process, since make takes no ``--data``. The Makefile's serve recipe says so by
  setting :data:`VIA_MAKE` (an internal variable, not a setting: it says how the process was
  started, not what the user chose).
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

#: Set to 1 by the Makefile's ``serve`` recipe, and by nothing else.
VIA_MAKE = "MOVIEGENRE_VIA_MAKE"


def via_make() -> bool:
    """Whether ``make serve`` started this process."""
    return os.environ.get(VIA_MAKE) == "1"


def python_command() -> str:
    """The Python running moviegenre, as a shell word: relative to the current directory when it
    is inside it (``.venv/bin/python``), else its absolute path. Not resolved: a virtual
    environment's ``python`` is a link, and the link is what selects the environment."""
    executable = sys.executable or "python3"
    path = Path(executable)
    if path.is_absolute():
        try:
            relative = path.relative_to(Path.cwd())
        except ValueError:
            pass
        else:
            executable = str(relative) if relative.parent != Path(".") else f"./{relative}"
    return shlex.quote(executable)


def pip_install(*requirements: str) -> str:
    """The command that installs ``requirements`` into the environment running moviegenre."""
    return " ".join([python_command(), "-m", "pip", "install", *map(shlex.quote, requirements)])


def install_extra(extra: str, *more: str) -> str:
    """The command that installs moviegenre's ``extra`` (and ``more`` packages) here."""
    return pip_install(f"moviegenre[{extra}]", *more)


def data_option(placeholder: str = "PATH") -> str:
    """How to pass a labelled data file the way moviegenre was run."""
    return f"make serve DATA={placeholder}" if via_make() else f"--data {placeholder}"


__all__ = ["VIA_MAKE", "data_option", "install_extra", "pip_install", "python_command", "via_make"]
