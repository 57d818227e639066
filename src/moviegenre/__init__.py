"""moviegenre: tag movies with genres from their plot synopsis.

>>> import moviegenre
>>> model = moviegenre.load_model("models/linear")          # doctest: +SKIP
>>> model.predict_proba(["a gunfight in a frontier town"])  # doctest: +SKIP
"""

from .artifact import load_model, save_model
from .errors import DataError, ModelError, MovieGenreError
from .genres import GENRES, PROBABILITY_KEYS
from .predict import GenreModel

__version__ = "0.1.0"

__all__ = [
    "GENRES",
    "PROBABILITY_KEYS",
    "DataError",
    "GenreModel",
    "ModelError",
    "MovieGenreError",
    "load_model",
    "save_model",
]
