"""Spelling variants of one name: Cyrillic romanisation schemes and Latin accent foldings.

Part of the SYNTHETIC data generator (:mod:`xlink.synth`). Real agencies write the same
Cyrillic name in different Latin schemes: ICAO Doc 9303 (Russian passports since 2013, and what
:mod:`xlink.records.transliterate` applies to Cyrillic text: ``Дмитрий`` → ``Dmitrii``), BGN/PCGN
(``Dmitriy``), the popular English-press form (``Dmitri``), German (``Schukow``), French
(``Joukov``) and Ukraine's national system (``Mykola``). Latin names with diacritics are written
with them, folded to ASCII (``Muller``) or, for German umlauts, expanded (``Mueller``).
"""

from __future__ import annotations

import unicodedata

__all__ = ["SCHEMES", "expand_umlauts", "fold_accents", "romanise"]

#: Romanisation schemes, in the order :func:`romanise` knows them.
SCHEMES = ("icao", "bgn", "popular", "german", "french", "ukrainian")

_VOWELS = set("аеёиоуыэюяєії")


def _table(spec: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for row in spec.split():
        ch, _, value = row.partition("=")
        out[ch] = value
    return out


_ICAO = _table(
    "а=a б=b в=v г=g д=d е=e ё=e ж=zh з=z и=i й=i к=k л=l м=m н=n о=o п=p р=r с=s т=t "
    "у=u ф=f х=kh ц=ts ч=ch ш=sh щ=shch ъ=ie ы=y ь= э=e ю=iu я=ia є=ie і=i ї=i ґ=g"
)
_BGN = {**_ICAO, **_table("ё=yo й=y ъ= ю=yu я=ya є=ye ї=yi")}
_POPULAR = {**_BGN, **_table("ё=yo й=i")}
_GERMAN = {
    **_ICAO,
    **_table("в=w ж=sch з=s й=j х=ch ц=z ч=tsch ш=sch щ=schtsch ъ= ё=jo ю=ju я=ja є=je ї=ji"),
}
_FRENCH = {
    **_ICAO,
    **_table("ж=j й=i х=kh ч=tch ш=ch щ=chtch ъ= у=ou ё=io ю=iou я=ia є=ie"),
}
_UKRAINIAN = {**_ICAO, **_table("г=h и=y й=i ъ= є=ie ї=i ю=iu я=ia")}
_UKRAINIAN_INITIAL = _table("є=ye ї=yi й=y ю=yu я=ya")


def _word(word: str, scheme: str) -> str:
    """Romanise one lower-case Cyrillic word (hyphens and other characters pass through)."""
    table = {
        "icao": _ICAO,
        "bgn": _BGN,
        "popular": _POPULAR,
        "german": _GERMAN,
        "french": _FRENCH,
        "ukrainian": _UKRAINIAN,
    }[scheme]
    out: list[str] = []
    n = len(word)
    for i, ch in enumerate(word):
        prev = word[i - 1] if i else ""
        nxt = word[i + 1] if i + 1 < n else ""
        last = i + 1 == n
        initial = i == 0 or not prev.isalpha()
        value = table.get(ch, ch)
        if (
            scheme in ("bgn", "german")
            and ch == "е"
            and (initial or prev in _VOWELS or prev in "ьъ")
        ):
            value = "ye" if scheme == "bgn" else "je"
        elif scheme == "ukrainian" and initial and ch in _UKRAINIAN_INITIAL:
            value = _UKRAINIAN_INITIAL[ch]
        elif scheme == "popular" and ch == "й" and last and prev in "иы":
            value = ""  # Dmitriy -> Dmitri, Yuriy -> Yuri
        elif scheme == "popular" and ch == "к" and nxt == "с":
            value = "x"  # Aleksandr -> Alexandr
            out.append(value)
            continue
        elif scheme == "popular" and ch == "с" and prev == "к":
            continue
        elif scheme in ("german", "french") and ch == "с" and prev in _VOWELS and nxt in _VOWELS:
            value = "ss"
        elif scheme == "german" and ch == "в" and last:
            value = "w"
        out.append(value)
    return "".join(out)


def _capitalise(text: str) -> str:
    return "-".join(
        " ".join(w[:1].upper() + w[1:] for w in part.split(" ")) for part in text.split("-")
    )


def romanise(cyrillic: str, scheme: str) -> str:
    """``cyrillic`` in the Latin ``scheme`` (one of :data:`SCHEMES`), capitalised per word.

    ``romanise("Дмитрий", "icao") == "Dmitrii"``; ``"bgn"`` gives ``Dmitriy`` and
    ``"popular"`` gives ``Dmitri``.

    Raises:
        KeyError: an unknown scheme.
    """
    words = cyrillic.lower().split(" ")
    return _capitalise(" ".join("-".join(_word(p, scheme) for p in w.split("-")) for w in words))


def fold_accents(text: str) -> str:
    """``text`` with diacritics removed the way an ASCII-only system writes it (Müller → Muller).

    Letters without a decomposition are folded by hand (``ł`` → ``l``, ``ß`` → ``ss``,
    ``đ`` → ``d``, ``ø`` → ``o``).
    """
    special = {"ł": "l", "Ł": "L", "ß": "ss", "đ": "d", "Đ": "D", "ø": "o", "Ø": "O", "ı": "i"}
    text = "".join(special.get(ch, ch) for ch in text)
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def expand_umlauts(text: str) -> str:
    """German umlauts written out (Müller → Mueller, Weiß → Weiss); other accents kept."""
    for a, b in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("Ä", "Ae"), ("Ö", "Oe"), ("Ü", "Ue")):
        text = text.replace(a, b)
    return text.replace("ß", "ss")
