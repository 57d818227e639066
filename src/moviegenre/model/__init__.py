"""A trained model: its directory (loading, checks and trust), its calibration, its
explanations, and :class:`~moviegenre.model.genre_model.GenreModel`, which scores plots."""
