"""Model kinds: how each kind of genre model is built, what its file may hold, how it compiles
to the fast form and how it explains (:class:`~moviegenre.kinds.registry.ModelKind`).

Importing this package registers the built-in kinds; none of them imports scikit-learn until a
model is built or deserialised.
"""

from moviegenre.kinds import hybrid, linear, seed, static  # noqa: F401  (each registers itself)
from moviegenre.kinds.registry import (
    DEFAULT_KIND,
    ModelKind,
    compiled_form,
    describe_params,
    get_kind,
    kind_names,
    prepare_params,
    register,
)

__all__ = ["DEFAULT_KIND", "ModelKind", "compiled_form", "describe_params", "get_kind", "kind_names",
           "prepare_params", "register"]
