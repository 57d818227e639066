"""The model zoo: one registered :class:`ModelKind` per model kind.

Every kind is a scikit-learn estimator that takes a DataFrame with columns ``plot``, ``title``
and ``year`` and whose ``predict_proba`` returns an (n, 24) array in genre order. A kind owns
everything particular to it: how it is built and its defaults, the training options a user may
set, the types its file may hold, how it compiles to a fast form (and whether it must) and how
it explains. Register a new kind with :func:`register`; ``moviegenre train --kind NAME`` then
finds it, and nothing outside ``kinds/`` asks what kind a model is: the kind named in
``model.json`` decides.

Builders import scikit-learn themselves: the loader reads the registry (which types a kind's
model file may name) on every cold start, and importing scikit-learn takes a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moviegenre.core.errors import ModelError, UsageError

#: What ``moviegenre train`` and ``moviegenre serve`` (with no model yet) train: the most accurate
#: kind that scores a plot in under a millisecond without torch (see the README's models table).
DEFAULT_KIND = "static"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelKind:
    """How to build one kind of model, what its serialised form may contain, how it compiles
    and explains, and which options it takes."""

    name: str
    description: str
    build: Callable[..., Any]
    defaults: dict[str, Any] = field(default_factory=dict)
    #: Types beyond scikit-learn's and numpy's that the serialised pipeline may hold.
    trusted_types: tuple[str, ...] = ()
    #: The fitted estimator -> its compiled scorer (a :mod:`moviegenre.fast` form: ``FastLinear``
    #: or ``FastStatic``), checked against the estimator; raises ``NotCompilable``. ``None``: the
    #: kind has no fast form.
    compile: Callable[[Any], Any] | None = None
    #: A model of this kind is saved only with its compiled form, and loaded only with it.
    must_compile: bool = False
    #: The loaded model (a ``GenreModel``) -> an explainer (:mod:`moviegenre.kinds.explainers`).
    #: ``None``: the kind cannot explain.
    explainer: Callable[[Any], Any] | None = None
    #: The training options a user may set from the command line (``--encoder``): names of
    #: :attr:`defaults`. One given as a local path is recorded in model.json by its name only.
    options: tuple[str, ...] = ()
    #: (full parameters, the data home or ``None``) -> the parameters to train with: finds what
    #: the parameters name (an encoder: a missing one fails before the data is read) and sets
    #: the :attr:`local_params` from the data home (``None``: no disk cache).
    prepare: Callable[[dict[str, Any], Path | None], dict[str, Any]] | None = None
    #: Parameters about this machine rather than the model (cache folders): left out of model.json.
    local_params: tuple[str, ...] = ()
    #: Whether the kind learns any label set, or only the course's 24 genres.
    any_labels: bool = True


_KINDS: dict[str, ModelKind] = {}


def register(kind: ModelKind) -> ModelKind:
    unknown = set(kind.options) - set(kind.defaults)
    if unknown:
        raise ValueError(f"kind {kind.name!r} offers option(s) {sorted(unknown)} that are not among its defaults")
    _KINDS[kind.name] = kind
    return kind


def get_kind(name: str) -> ModelKind:
    try:
        return _KINDS[name]
    except KeyError:
        raise UsageError(f"unknown model kind {name!r}; choose one of {sorted(_KINDS)}") from None


def kind_names() -> list[str]:
    return sorted(_KINDS)


def build_estimator(name: str, **params: Any):
    kind = get_kind(name)
    _refuse_unknown(kind, params)
    return kind.build(**{**kind.defaults, **params})


def all_trusted_types() -> set[str]:
    return {t for kind in _KINDS.values() for t in kind.trusted_types}


def prepare_params(kind_name: str, params: dict[str, Any], *, data_home: Path | None = None) -> dict[str, Any]:
    """The full parameters to train a ``kind_name`` model with: its defaults, then ``params``,
    then the kind's :attr:`~ModelKind.prepare` (an encoder found now, so that a missing one fails
    in seconds; cache folders under ``data_home``, none when it is ``None``).

    Raises :class:`~moviegenre.core.errors.UsageError` for a parameter the kind does not take,
    naming the kinds that do.
    """
    kind = get_kind(kind_name)
    _refuse_unknown(kind, params)
    full = {**kind.defaults, **params}
    if kind.prepare is not None:
        full = kind.prepare(full, None if data_home is None else Path(data_home))
    return full


def describe_params(kind_name: str, params: dict[str, Any]) -> dict[str, Any]:
    """``params`` as model.json records them, with no path of this machine: the kind's
    :attr:`~ModelKind.local_params` (cache folders) left out, and an option given as a local
    folder or file recorded as ``local folder 'NAME'``."""
    kind = get_kind(kind_name)
    described = {}
    for name, value in params.items():
        if name in kind.local_params:
            continue
        if name in kind.options and isinstance(value, str) and value and Path(value).expanduser().exists():
            value = f"local folder {Path(value).expanduser().resolve().name!r}"
        described[name] = value
    return described


def compiled_form(kind_name: str, fitted: Any, *, strict: bool = True) -> Any | None:
    """The fitted estimator's compiled scorer, checked against it; ``None`` when the kind has
    no fast form.

    When it cannot compile: for a kind that :attr:`~ModelKind.must_compile` (and ``strict``),
    raises :class:`~moviegenre.core.errors.ModelError` saying why, for such a model is never
    saved; otherwise warns (it would be scored through scikit-learn, about 100x slower) and
    returns ``None``.
    """
    kind = get_kind(kind_name)
    if kind.compile is None:
        return None
    from moviegenre.kinds.compile import NotCompilable

    try:
        return kind.compile(fitted)
    except NotCompilable as exc:
        if kind.must_compile and strict:
            raise ModelError(
                f"a {kind_name!r} model must compile to its fast form, and this one cannot: {exc}. "
                "The model is not saved"
            ) from None
        logger.warning("this %r model has no fast form (%s); it is scored through scikit-learn, about 100x slower",
                       kind_name, exc)
        return None


def _refuse_unknown(kind: ModelKind, params: dict[str, Any]) -> None:
    for name in sorted(set(params) - set(kind.defaults)):
        takers = [other.name for other in _KINDS.values() if name in other.defaults]
        where = f"the kinds that take it: {', '.join(sorted(takers))}" if takers else "no kind takes it"
        raise UsageError(f"model kind {kind.name!r} takes no option {name!r} ({where})")
