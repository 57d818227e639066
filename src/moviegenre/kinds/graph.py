"""One walk over a fitted estimator's graph, for everything that must visit its parts.

Saving shrinks each part (:func:`moviegenre.training.train.compact_for_storage`) and finds the
parts that keep files beside the model (:mod:`moviegenre.model.artifact`); loading points those
parts at the directory they were loaded from. All of them go through :func:`estimators`, so a
new container or a new kind's estimator is reached everywhere or nowhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Values that hold no estimator: skipped without a look inside (a vocabulary is a dict of
#: tens of thousands of these).
_LEAVES = (str, bytes, int, float, complex, bool, type(None))


def is_estimator(obj: Any) -> bool:
    """A scikit-learn style estimator (an instance with ``get_params``), not a class."""
    return not isinstance(obj, type) and callable(getattr(obj, "get_params", None))


def estimators(obj: Any) -> Iterator[Any]:
    """Every estimator reachable from ``obj``, once each, each before its parts.

    It goes through estimators' attributes (parameters and fitted attributes alike, as
    scikit-learn keeps both on the instance) and through lists, tuples and dicts at any depth
    (a Pipeline's ``steps``, a ColumnTransformer's ``transformers_``, a OneVsRestClassifier's
    ``estimators_``...). An estimator's attributes are read after the caller has seen it, so the
    caller may replace or delete attributes of the estimator it was just given.
    """
    seen: set[int] = set()
    stack: list[Any] = [obj]
    while stack:
        item = stack.pop()
        if isinstance(item, _LEAVES) or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, dict):
            children = list(item.values())
        elif isinstance(item, list | tuple):
            children = list(item)
        elif is_estimator(item):
            yield item
            children = list(getattr(item, "__dict__", {}).values())
        else:
            continue
        stack.extend(reversed(children))  # depth first, in attribute order


__all__ = ["estimators", "is_estimator"]
