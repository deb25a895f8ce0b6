"""Deterministic text embeddings for the emulator's embedding routes.

The real models are not public, and a test of a retrieval pipeline needs vectors whose
geometry means something: a paraphrase should sit closer to its source than an unrelated
text does. This is a feature-hashing embedding: the text is normalised (Unicode NFKC, lower
case, runs of spaces folded), cut into character n-grams of 1 to 3 characters within each
word (with word-boundary markers, so ``"cat"`` and ``"concatenate"`` share less than their
letters) plus whole words, and every feature adds a signed weight to the coordinate its hash
picks. Hangul syllables are characters like any other, so Korean text gets the same
treatment. The sum is scaled to unit length, so the cosine of two vectors is their dot
product. The same text always gives the same vector, in any process, on any machine
(BLAKE2b, no randomness).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections import defaultdict

#: the dimension CLOVA Studio's embedding models answer with
DIMENSIONS = 1024
#: n-gram size -> weight: single characters say little about meaning, trigrams most
_NGRAM_WEIGHTS = {1: 0.25, 2: 1.0, 3: 1.5}
_WORD_WEIGHT = 2.0
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"\w+", re.UNICODE)


def _features(text: str) -> dict[str, float]:
    normal = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()
    features: defaultdict[str, float] = defaultdict(float)
    for word in _WORD.findall(normal):
        features[f"w:{word}"] += _WORD_WEIGHT
        padded = f"<{word}>"
        for n, weight in _NGRAM_WEIGHTS.items():
            for start in range(len(padded) - n + 1):
                gram = padded[start : start + n]
                if gram not in ("<", ">"):
                    features[f"g{n}:{gram}"] += weight
    if not features:  # only punctuation or spaces: embed the characters themselves
        for char in normal or " ":
            features[f"c:{char}"] += 1.0
    return features


def _slot(feature: str, dimensions: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest()
    value = int.from_bytes(digest, "big")
    return value % dimensions, (1.0 if (value >> 63) & 1 else -1.0)


def embed_text(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    """A unit vector of ``dimensions`` floats for ``text``; similar texts give close vectors."""
    if dimensions < 1:
        raise ValueError(f"dimensions must be at least 1, got {dimensions}")
    vector = [0.0] * dimensions
    for feature, weight in _features(text).items():
        index, sign = _slot(feature, dimensions)
        vector[index] += sign * math.sqrt(weight)  # sublinear: a repeated word does not dominate
    norm = math.sqrt(sum(v * v for v in vector))
    if norm == 0.0:  # features cancelled out exactly: fall back to a fixed axis
        vector[_slot(text, dimensions)[0]] = 1.0
        return vector
    return [v / norm for v in vector]


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors of the same length (their dot product, for unit vectors)."""
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0
