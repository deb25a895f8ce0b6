"""Scoring one answer against its reference: pure functions, no I/O, no Airflow.

Normalization (:func:`normalize`): Unicode NFKC (full-width digits and letters, compatibility
jamo and the like become their plain forms), case-folded, whitespace collapsed. Exact match
and contains compare normalized strings.

Tokenization for F1 (:func:`tokens`): the normalized text is split on every character that is
not a word character (``\\w``: letters of every script, digits, underscore), then each word is
cut into runs of Hangul syllables and runs of anything else:

* a non-Hangul run (``warranty``, ``2``, ``hcx``) is one token;
* a Hangul run becomes its **syllable bigrams** (``보증기간`` -> ``보증``, ``증기``, ``기간``);
  a one-syllable run is kept as a unigram (``년``).

Why bigrams for Korean: a Korean word (어절) carries its particles and endings attached
(``보증은``, ``보증이``, ``보증기간은``), so whole-word tokens would score ``2년입니다`` against
``2년`` as no overlap at all. Syllable bigrams share the stem's pairs whatever is attached, need
no morphological analyzer (no dependency, same result everywhere), and are the usual choice
for CJK text in search engines (Lucene's CJK bigram filter). Single syllables would be too
lenient: common syllables (``이``, ``다``) would overlap between unrelated sentences.

F1 is the SQuAD-style token-overlap F1 over token multisets.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

#: Metrics computed for every answered row (0 or 1, or in [0, 1] for F1).
ROW_METRICS = ("exact_match", "contains", "token_f1")
#: Every metric a gate can use; ``regex`` needs a row ``pattern``, ``judge`` a judge model.
METRICS = (*ROW_METRICS, "regex", "judge")

_SPACE = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
# Hangul syllables (가-힣), plus Hangul jamo that NFKC leaves as they are.
_HANGUL_RUN = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]+|[^\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]+")
_HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]")


def normalize(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed and trimmed."""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def tokens(text: str) -> list[str]:
    """The F1 tokens of ``text``: words, with Hangul runs as syllable bigrams (see the module doc)."""
    out: list[str] = []
    for word in _WORD.findall(normalize(text)):
        for run in _HANGUL_RUN.findall(word):
            if _HANGUL.match(run) and len(run) > 1:
                out.extend(run[i : i + 2] for i in range(len(run) - 1))
            else:
                out.append(run)
    return out


def exact_match(answer: str, reference: str) -> float:
    """1.0 when the normalized answer equals the normalized reference."""
    return float(normalize(answer) == normalize(reference))


def contains(answer: str, reference: str) -> float:
    """1.0 when the normalized reference occurs in the normalized answer."""
    return float(normalize(reference) in normalize(answer))


def regex_match(answer: str, pattern: str | re.Pattern[str]) -> float:
    """1.0 when ``pattern`` (Python ``re`` syntax, searched anywhere) matches the NFKC answer."""
    compiled = re.compile(pattern) if isinstance(pattern, str) else pattern
    return float(compiled.search(unicodedata.normalize("NFKC", answer)) is not None)


def token_f1(answer: str, reference: str) -> float:
    """Token-overlap F1 of the answer against the reference (both empty: 1.0; one empty: 0.0)."""
    got, want = Counter(tokens(answer)), Counter(tokens(reference))
    if not got or not want:
        return float(got == want)
    common = sum((got & want).values())
    if common == 0:
        return 0.0
    precision, recall = common / sum(got.values()), common / sum(want.values())
    return 2 * precision * recall / (precision + recall)


def score(answer: str, reference: str, pattern: str | re.Pattern[str] | None = None) -> dict[str, float | None]:
    """Every rule-based metric of one answer; ``regex`` is None when the row has no pattern."""
    return {
        "exact_match": exact_match(answer, reference),
        "contains": contains(answer, reference),
        "token_f1": round(token_f1(answer, reference), 6),
        "regex": None if pattern is None else regex_match(answer, pattern),
    }
