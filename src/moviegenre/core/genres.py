"""The 24 genres, in the original system's (and the course's submission format's) order."""

GENRES: tuple[str, ...] = (
    "Action", "Adventure", "Animation", "Biography", "Comedy", "Crime", "Documentary", "Drama",
    "Family", "Fantasy", "Film-Noir", "History", "Horror", "Music", "Musical", "Mystery", "News",
    "Romance", "Sci-Fi", "Short", "Sport", "Thriller", "War", "Western",
)  # fmt: skip

#: Output keys of the original API and the submission CSV: ``p_Action`` ... ``p_Western``.
PROBABILITY_KEYS: tuple[str, ...] = tuple(f"p_{genre}" for genre in GENRES)
