"""A corpus of English sentences for word-timing checks: varied, with the short function words
engines tend to join to their neighbours ("for a while", "and", "of the"), names, numbers and
abbreviations. Deterministic (a fixed seed), so every run checks the same sentences."""

from __future__ import annotations

import random
from typing import Final

_SUBJECTS: Final = (
    "The old keeper", "A young doctor", "Mr. and Mrs. Smith", "My brother", "The little girl",
    "Our teacher", "The tired driver", "Dr. Jones", "A quiet neighbour", "The new manager",
    "Two friends", "The baker", "Her sister", "The pilot", "A stranger",
)  # fmt: skip
_VERBS: Final = (
    "stayed for a while in", "walked slowly to", "looked at the map of", "came back from",
    "waited an hour near", "talked for hours about", "dreamed of", "drove all night to",
    "wrote a letter about", "ran out of", "thought about", "sang a song about",
    "asked a question about", "paid $5 for", "spent 3 days in",
)  # fmt: skip
_OBJECTS: Final = (
    "the small town", "a green valley", "the station", "an empty house", "the river",
    "the market by the sea", "a book of poems", "the garden", "the museum", "the mountains",
    "a cup of tea", "the harbour", "the school on the hill", "the bridge", "the forest",
)  # fmt: skip
_ENDINGS: Final = (
    "", " at dawn", " on Monday", " in 1999", " at 3:30 p.m.", " with a smile",
    " before the storm", " after lunch", " for the first time", " as it began to rain",
)  # fmt: skip
_OPENERS: Final = ("", "", "", "Yesterday, ", "Later, ", "Of course, ", "In the end, ")


def corpus(count: int, seed: int = 17) -> list[str]:
    """``count`` distinct sentences."""
    rng = random.Random(seed)
    sentences: list[str] = []
    seen: set[str] = set()
    while len(sentences) < count:
        opener = rng.choice(_OPENERS)
        subject = rng.choice(_SUBJECTS)
        if opener:
            subject = (
                subject[0].lower() + subject[1:]
                if subject.startswith(("The", "A ", "Our", "My", "Her", "Two"))
                else subject
            )
        sentence = (
            f"{opener}{subject} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)}{rng.choice(_ENDINGS)}."
        )
        if sentence not in seen:
            seen.add(sentence)
            sentences.append(sentence)
    return sentences


def passages(count: int, per_passage: int) -> list[str]:
    """The corpus' first ``count`` sentences, joined ``per_passage`` at a time."""
    sentences = corpus(count)
    return [" ".join(sentences[i : i + per_passage]) for i in range(0, count, per_passage)]
