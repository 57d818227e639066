"""How the built-in kinds explain (:attr:`ModelKind.explainer
<moviegenre.kinds.registry.ModelKind.explainer>`): a loaded model -> an
:class:`~moviegenre.fast.explain.Explainer`.

The linear and static kinds read their compiled form, so explaining them needs neither
scikit-learn nor ``model.skops``. The hybrid kind has no compiled form: it reads its pipeline,
compiling the linear part to read its terms.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from moviegenre.fast.explain import (
    Explainer,
    LinearExplainer,
    NotExplainable,
    Parts,
    StaticExplainer,
    fold_blend,
)
from moviegenre.fast.linear import FastLinear
from moviegenre.fast.static import FastStatic

#: Each compiled form and how it is explained.
_COMPILED: dict[type, type] = {FastStatic: StaticExplainer, FastLinear: LinearExplainer}


def compiled_explainer(model: Any) -> Explainer:
    """The explainer of a model scored by its compiled form (``model.scorer``): the linear
    and static kinds. Never reads ``model.pipeline``."""
    scorer = model.scorer
    explainer = _COMPILED.get(type(scorer))
    if explainer is None:
        raise NotExplainable(f"it is scored by a {type(scorer).__name__}, not by a compiled form")
    return explainer(scorer)


def hybrid_explainer(model: Any) -> Explainer:
    """The explainer of a ``hybrid`` model: its linear part compiled, and the blend and the
    embedding model's scores read from its pipeline (deserialised here if it was deferred)."""
    from moviegenre.kinds.compile import NotCompilable, compile_linear

    hybrid = model.pipeline
    try:
        text = compile_linear(hybrid.text_model_)
    except NotCompilable as exc:
        raise NotExplainable(f"its linear part cannot be read: {exc}") from None
    return HybridExplainer(hybrid, LinearExplainer(text))


class HybridExplainer:
    """A fitted ``HybridClassifier``'s :class:`~moviegenre.fast.explain.Parts`: the terms of its
    compiled linear part, with the blend and the embedding model's scores folded in."""

    def __init__(self, hybrid: Any, text: LinearExplainer):
        self.hybrid = hybrid
        self.text = text

    def explain(self, plots: Sequence[str], titles: Sequence[str], years: np.ndarray) -> list[Parts]:
        import pandas as pd

        rows = self.text.explain(plots, titles, years)
        if not rows:
            return []
        frame = pd.DataFrame({"plot": list(plots), "title": list(titles), "year": np.asarray(years, dtype=float)})
        embedding = self.hybrid.base_scores(frame)[:, :, 1]
        coef, bias = np.asarray(self.hybrid.blend_coef_), np.asarray(self.hybrid.blend_intercept_)
        return [fold_blend(row, coef, bias, scores) for row, scores in zip(rows, embedding, strict=True)]
