"""The files of a model directory, named once.

Every module that reads or writes a model directory takes its file names from :class:`Layout`:
the loader and saver (:mod:`moviegenre.model.artifact`), the model card
(:mod:`moviegenre.model.card`), the compiled form's reader and the parts of a pipeline that keep
files beside it (a sentence encoder, under :attr:`Layout.ENCODER`). It lives in ``core`` so that
every layer may import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar


@dataclass(frozen=True)
class Layout:
    """A model directory and the paths of its files.

    >>> Layout(Path("models/linear")).card.as_posix()
    'models/linear/model.json'
    """

    directory: Path

    #: The fitted pipeline, serialised with skops.
    MODEL: ClassVar[str] = "model.skops"
    #: The model card (:class:`moviegenre.model.card.ModelCard`).
    CARD: ClassVar[str] = "model.json"
    #: The compiled form, for the kinds that have one (:mod:`moviegenre.fast.bundle`).
    FAST: ClassVar[str] = "fast.npz"
    #: A sentence encoder's files (ONNX export, tokenizer), for the kinds that take one.
    ENCODER: ClassVar[str] = "encoder"
    #: Names no file a pipeline keeps beside the model may take.
    RESERVED: ClassVar[frozenset[str]] = frozenset({MODEL, CARD, FAST})

    def __post_init__(self) -> None:
        object.__setattr__(self, "directory", Path(self.directory))

    @property
    def model(self) -> Path:
        return self.directory / self.MODEL

    @property
    def card(self) -> Path:
        return self.directory / self.CARD

    @property
    def fast(self) -> Path:
        return self.directory / self.FAST

    @property
    def encoder(self) -> Path:
        return self.directory / self.ENCODER
