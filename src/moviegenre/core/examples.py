"""The two example plots of the original system's README, with the probabilities it showed.

Used by the API's OpenAPI examples, the web page's example buttons and the compatibility tests.
"""

EXAMPLE_PLOTS: dict[str, str] = {
    "E1": (
        "who meets by fate ,  shall be sealed by fate .  theresa osborne is running along the "
        "beach when she stumbles upon a bottle washed up on the shore .  inside is a message ,  "
        "reading the letter she feels so moved and yet she felt as if she has violated someone ' "
        "s thoughts .  in love with a man she has never met ,  theresa tracks down the author of "
        "the letter to a small town in wilmington ,  two lovers with crossed paths .  but yet one "
        "can ' t let go of their past ."
    ),
    "E2": (
        "the true story of billy hayes ,  an american college student who is caught smuggling "
        "drugs out of turkey and thrown into prison ."
    ),
}

#: The top genres the original system's README reports for each example.
ORIGINAL_TOP_GENRES: dict[str, dict[str, float]] = {
    "E1": {"Romance": 0.63, "Drama": 0.48, "Comedy": 0.18, "Thriller": 0.14, "Action": 0.13, "Mystery": 0.12},
    "E2": {"Drama": 0.82, "Comedy": 0.34, "Thriller": 0.31, "Crime": 0.26, "Action": 0.14, "Biography": 0.11},
}
