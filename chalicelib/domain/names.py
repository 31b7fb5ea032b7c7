"""Name search keys: case- and accent-insensitive words of a person's names.

"Åsa Öberg" → {"asa", "oberg"}; "Nguyễn Văn An" → {"nguyen", "van", "an"}. Letters that
Unicode does not decompose (ø, æ, đ, ł, ...) are folded by hand so Nordic, Slovenian and
Vietnamese names are found by the spelling people type on an English keyboard.
"""

from __future__ import annotations

import re
import unicodedata

_FOLD = str.maketrans(
    {"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "ł": "l", "þ": "th", "ı": "i", "ŋ": "ng"}
)
_WORD = re.compile(r"[^\W_]+")

MIN_QUERY_LENGTH = 2
# Words shorter than a query can never match one; a bound keeps a profile's index entries
# within one DynamoDB transaction.
MAX_INDEXED_WORDS = 20
# A word is a sort key (DynamoDB: at most 1,024 bytes); a compatibility decomposition can make
# one character many ("ﷲ" is 18). Words, of names and of queries alike, are cut to this many
# characters (at most 4 bytes each), so a long query still finds the name it is a prefix of.
MAX_WORD_LENGTH = 64


def normalize(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", stripped.translate(_FOLD))


def words(text: str) -> list[str]:
    seen: dict[str, None] = {}
    for word in _WORD.findall(normalize(text)):
        seen.setdefault(word[:MAX_WORD_LENGTH], None)
    return list(seen)


def search_words(*names: str | None) -> list[str]:
    seen: dict[str, None] = {}
    for name in names:
        for word in words(name or ""):
            if len(word) >= MIN_QUERY_LENGTH:
                seen.setdefault(word, None)
    return list(seen)[:MAX_INDEXED_WORDS]


def matches(query_words: list[str], name_words: list[str]) -> bool:
    """Every query word is a prefix of some word of the name."""
    return all(any(w.startswith(q) for w in name_words) for q in query_words)
