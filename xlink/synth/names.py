"""Name pools by culture, with Zipf-like frequencies: SYNTHETIC names, no real person.

Parses :mod:`xlink.synth._pools` into :class:`Culture` objects whose pools draw names with
weight ``1 / (rank + q) ** s``, so that common names really are common (Nguyễn is about two in
five Vietnamese surnames; Smith about one in sixty English ones). The ``EXTRA_*`` spellings of
the pools are merged in.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

from xlink.synth import _pools
from xlink.synth.romanise import SCHEMES, expand_umlauts, fold_accents, romanise

__all__ = ["CULTURES", "Culture", "NameForm", "Pool", "feminine_family", "patronymic"]


@dataclass(frozen=True, slots=True)
class NameForm:
    """One name and the spellings met in practice.

    For a Latin-script name, ``spellings[0]`` is the usual spelling. For a Cyrillic name,
    ``cyrillic`` holds the original and ``spellings`` one romanisation per scheme of its culture
    (aligned with :attr:`Culture.schemes`, duplicates kept).
    """

    spellings: tuple[str, ...]
    nicknames: tuple[NameForm, ...] = ()
    cyrillic: str = ""

    def spelling(self, index: int) -> str:
        """Spelling ``index``, or the usual one when this name has fewer spellings."""
        return self.spellings[index] if index < len(self.spellings) else self.spellings[0]


@dataclass(frozen=True, slots=True)
class Pool:
    """Names with cumulative Zipf weights; :meth:`pick` draws one."""

    forms: tuple[NameForm, ...]
    cumulative: tuple[float, ...]

    @classmethod
    def zipf(cls, forms: Sequence[NameForm], s: float, q: float) -> Pool:
        """Weight the name at rank ``r`` (0-based) by ``1 / (r + 1 + q) ** s``."""
        return cls.weighted(forms, [1.0 / (r + 1 + q) ** s for r in range(len(forms))])

    @classmethod
    def weighted(cls, forms: Sequence[NameForm], weights: Sequence[float]) -> Pool:
        if not forms or len(forms) != len(weights):
            raise ValueError("a pool needs one weight per name, and at least one name")
        return cls(tuple(forms), tuple(itertools.accumulate(weights)))

    def pick(self, rng_value: float) -> NameForm:
        """The name at ``rng_value`` in [0, 1) (pass ``rng.random()``)."""
        i = bisect.bisect_right(self.cumulative, rng_value * self.cumulative[-1])
        return self.forms[min(i, len(self.forms) - 1)]

    def __len__(self) -> int:
        return len(self.forms)


@dataclass(frozen=True, slots=True)
class Culture:
    """A naming culture: its pools, scripts and customs."""

    label: str
    nationality: str  # ISO 3166-1 alpha-3 of the country the names are most common in
    share: float  # share of the synthetic (Canadian + US) population
    given_f: Pool
    given_m: Pool
    family: Pool
    birth_places: tuple[str, ...]
    schemes: tuple[str, ...] = ()  # Cyrillic cultures: romanisation schemes, by weight
    scheme_weights: tuple[float, ...] = ()
    middle_rate: float = 0.0  # share of people with a middle name
    middle_f: Pool | None = None  # middle names, when not drawn from the given-name pool
    middle_m: Pool | None = None
    compound_rate: float = 0.0  # share with two family names (García López)
    spouse_name_rate: float = 0.0  # share of married women who take the husband's surname
    family_first: bool = False  # the family name is written first at home (swaps are likelier)
    jan1_rate: float = 0.0  # share of dates of birth recorded as 1 January (unknown day)
    slavic: bool = False  # feminine surname forms (-ov/-ova, -ski/-ska)
    feminine: dict[str, NameForm] = field(default_factory=dict, compare=False)

    @property
    def cyrillic(self) -> bool:
        return bool(self.schemes)


def _entries(text: str) -> list[tuple[list[str], list[str]]]:
    out: list[tuple[list[str], list[str]]] = []
    for entry in text.split(","):
        entry = " ".join(entry.split())
        if entry:
            name, *nicks = entry.split("/")
            out.append((name.split("|"), nicks))
    return out


def _latin(spellings: Sequence[str], nicks: Sequence[str] = (), german: bool = False) -> NameForm:
    out = list(spellings)
    if german:
        out += [expand_umlauts(s) for s in spellings]
    return NameForm(tuple(dict.fromkeys(out)), tuple(NameForm((n,)) for n in nicks))


def _cyr(text: str, schemes: Sequence[str], nicks: Sequence[str] = ()) -> NameForm:
    return NameForm(
        tuple(romanise(text, s) for s in schemes),
        tuple(_cyr(n, schemes) for n in nicks),
        cyrillic=text,
    )


def _key(form: NameForm) -> str:
    return fold_accents(form.cyrillic or form.spellings[0]).lower()


def _merge(
    forms: list[NameForm], extra: Sequence[tuple[str, ...]], compound: bool = False
) -> list[NameForm]:
    """Add further names: known names gain spellings, new ones go last.

    With ``compound``, two-part surnames are skipped: the generator composes those itself.
    """
    index = {_key(f): i for i, f in enumerate(forms)}
    for spellings in extra:
        if compound and " " in spellings[0]:
            continue
        key = fold_accents(spellings[0]).lower()
        if key in index:
            f = forms[index[key]]
            merged = tuple(dict.fromkeys((*f.spellings, *spellings)))
            forms[index[key]] = NameForm(merged, f.nicknames, f.cyrillic)
        else:
            index[key] = len(forms)
            forms.append(NameForm(tuple(spellings)))
    return forms


def _dedupe(forms: list[NameForm]) -> list[NameForm]:
    seen: dict[str, NameForm] = {}
    for f in forms:
        seen.setdefault(_key(f), f)
    return list(seen.values())


def _pool_forms(label: str, text: str, schemes: Sequence[str]) -> list[NameForm]:
    if schemes:
        return _dedupe([_cyr(n[0], schemes, nicks) for n, nicks in _entries(text)])
    return _dedupe([_latin(n, nicks, label == "german") for n, nicks in _entries(text)])


def _combined_family(label: str, schemes: Sequence[str]) -> list[NameForm]:
    stems = [names[0] for names, _ in _entries(_pools.STEMS.get(label, ""))]
    suffixes = [names[0] for names, _ in _entries(_pools.SUFFIXES.get(label, ""))]
    out: list[NameForm] = []
    if label == "arabic":
        for stem in stems:
            variants = (f"Al-{stem}", f"Al {stem}", f"Al{stem.lower()}", f"El-{stem}", stem)
            out.append(NameForm(variants))
    for stem, suffix in itertools.product(stems, suffixes):
        name = stem + suffix
        out.append(_cyr(name, schemes) if schemes else _latin([name], german=label == "german"))
    # a fixed interleaving, so that no one stem takes all the high ranks
    return [out[(k * 7919) % len(out)] for k in range(len(out))] if out else out


def feminine_family(form: NameForm, schemes: Sequence[str]) -> NameForm:
    """The feminine form of a Slavic surname (Иванов → Иванова, Kowalski → Kowalska)."""
    if form.cyrillic:
        text = form.cyrillic
        for masc, fem in (("ский", "ская"), ("цкий", "цкая"), ("ской", "ская"), ("ой", "ая")):
            if text.endswith(masc):
                return _cyr(text[: -len(masc)] + fem, schemes)
        if text.endswith(("ов", "ев", "ёв", "ин", "ын")):
            return _cyr(text + "а", schemes)
        if text.endswith("ський"):
            return _cyr(text[:-2] + "а", schemes)
        return form
    spellings = []
    for s in form.spellings:
        for masc, fem in (("ski", "ska"), ("cki", "cka"), ("dzki", "dzka")):
            if s.endswith(masc):
                s = s[: -len(masc)] + fem
                break
        spellings.append(s)
    return NameForm(tuple(spellings))


def patronymic(father: NameForm, female: bool, schemes: Sequence[str]) -> NameForm:
    """The Russian or Ukrainian patronymic of a father's given name (Иван → Иванович)."""
    stem = father.cyrillic
    if stem.endswith(("й", "ь")):
        text = stem[:-1] + ("евна" if female else "евич")
    elif stem.endswith(("а", "я")):
        text = stem[:-1] + ("ична" if female else "ич")
    else:
        text = stem + ("овна" if female else "ович")
    return _cyr(text, schemes)


def _syllable_names(text: str) -> tuple[list[NameForm], list[float]]:
    syllables = [n[0] for n, _ in _entries(text)]
    forms: list[NameForm] = []
    weights: list[float] = []
    for r, a in enumerate(syllables):
        forms.append(NameForm((a,)))
        weights.append(0.35 / (r + 2))
    for (r, a), (t, b) in itertools.product(enumerate(syllables), repeat=2):
        if a != b:
            forms.append(NameForm((a + b.lower(), f"{a} {b}", f"{a}-{b.lower()}")))
            weights.append(1.0 / ((r + 2) * (t + 2)))
    return forms, weights


def _spellings(table: dict[str, str], label: str) -> list[tuple[str, ...]]:
    """Each name of ``table[label]`` (none when absent) as its spellings, nicknames left out."""
    return [tuple(spellings) for spellings, _ in _entries(table.get(label, ""))]


_LATIN_MERGE = ("english", "french", "german", "arabic", "chinese", "hispanic", "polish")


@dataclass(frozen=True)
class _Spec:
    label: str
    nationality: str
    share: float
    places: tuple[str, ...]
    family_s: float = 1.0
    family_q: float = 6.0
    extra: dict[str, object] = field(default_factory=dict)


_RUSSIAN_SCHEMES = ("icao", "bgn", "popular", "german", "french")
_UKRAINIAN_SCHEMES = ("ukrainian", "icao", "bgn", "popular")
_SPECS = (
    _Spec("english", "GBR", 0.38, ("Toronto", "Chicago", "London", "Glasgow", "Boston"),
          family_q=10.0, extra={"middle_rate": 0.45, "spouse_name_rate": 0.75}),
    _Spec("french", "FRA", 0.09, ("Montréal", "Québec", "Sherbrooke", "Lyon"),
          extra={"middle_rate": 0.2, "spouse_name_rate": 0.1}),
    _Spec("hispanic", "MEX", 0.14, ("Ciudad de México", "Guadalajara", "Bogotá", "Lima"),
          extra={"middle_rate": 0.15, "compound_rate": 0.75}),
    _Spec("german", "DEU", 0.06, ("München", "Köln", "Hamburg", "Berlin"),
          extra={"middle_rate": 0.3, "spouse_name_rate": 0.7}),
    _Spec("polish", "POL", 0.035, ("Warszawa", "Kraków", "Gdańsk", "Łódź"),
          extra={"middle_rate": 0.2, "spouse_name_rate": 0.8, "slavic": True}),
    _Spec("russian", "RUS", 0.035, ("Moskva", "Sankt-Peterburg", "Novosibirsk", "Kazan"),
          extra={"middle_rate": 0.6, "spouse_name_rate": 0.75, "slavic": True,
                 "schemes": _RUSSIAN_SCHEMES, "scheme_weights": (0.4, 0.25, 0.2, 0.08, 0.07)}),
    _Spec("ukrainian", "UKR", 0.03, ("Kyiv", "Lviv", "Kharkiv", "Odesa"),
          extra={"middle_rate": 0.5, "spouse_name_rate": 0.75, "slavic": True,
                 "schemes": _UKRAINIAN_SCHEMES, "scheme_weights": (0.5, 0.25, 0.15, 0.1)}),
    _Spec("arabic", "SYR", 0.06, ("Damascus", "Aleppo", "Beirut", "Cairo", "Baghdad"),
          extra={"middle_rate": 0.3, "jan1_rate": 0.08}),
    _Spec("chinese", "CHN", 0.07, ("Beijing", "Shanghai", "Guangzhou", "Hong Kong"),
          family_s=1.1, family_q=0.5, extra={"family_first": True}),
    _Spec("vietnamese", "VNM", 0.03, ("Hà Nội", "Hồ Chí Minh", "Huế"),
          family_s=1.6, family_q=0.0,
          extra={"middle_rate": 0.85, "family_first": True, "jan1_rate": 0.06}),
    _Spec("south_asian", "IND", 0.06, ("Mumbai", "Delhi", "Lahore", "Chandigarh", "Dhaka"),
          family_s=0.9, family_q=1.0,
          extra={"middle_rate": 0.2, "spouse_name_rate": 0.6, "jan1_rate": 0.05}),
)  # fmt: skip


def _build(spec: _Spec) -> Culture:
    extra = dict(spec.extra)
    schemes: tuple[str, ...] = extra.get("schemes", ())  # type: ignore[assignment]
    assert all(s in SCHEMES for s in schemes)
    label = spec.label
    given: dict[str, list[NameForm]] = {}
    weights: dict[str, list[float] | None] = {}
    for sex, table in (("F", _pools.GIVEN_F), ("M", _pools.GIVEN_M)):
        if label == "chinese":
            forms, w = _syllable_names(_pools.SYLLABLES_F if sex == "F" else _pools.SYLLABLES_M)
            given[sex], weights[sex] = forms, w
            continue
        forms = _pool_forms(label, table[label], schemes)
        if label in _LATIN_MERGE:
            more = _pools.EXTRA_GIVEN_F if sex == "F" else _pools.EXTRA_GIVEN_M
            forms = _merge(forms, _spellings(more, label))
        given[sex], weights[sex] = forms, None
    family = _pool_forms(label, _pools.FAMILY[label], schemes)
    if label in _LATIN_MERGE:
        more_family = _spellings(_pools.EXTRA_FAMILY, label)
        family = _merge(family, more_family, compound=label == "hispanic")
    family = _dedupe(family + _combined_family(label, schemes))
    feminine: dict[str, NameForm] = {}
    if extra.get("slavic"):
        feminine = {_key(f): feminine_family(f, schemes) for f in family}
    if label == "vietnamese":
        extra["middle_f"] = Pool.zipf(_pool_forms(label, _pools.VIETNAMESE_MIDDLE_F, ()), 2.0, 0)
        extra["middle_m"] = Pool.zipf(_pool_forms(label, _pools.VIETNAMESE_MIDDLE_M, ()), 2.0, 0)

    def pool(sex: str) -> Pool:
        w = weights[sex]
        return Pool.weighted(given[sex], w) if w else Pool.zipf(given[sex], 1.0, 2.0)

    return Culture(
        label=label,
        nationality=spec.nationality,
        share=spec.share,
        given_f=pool("F"),
        given_m=pool("M"),
        family=Pool.zipf(family, spec.family_s, spec.family_q),
        birth_places=spec.places,
        feminine=feminine,
        **extra,  # type: ignore[arg-type]
    )


def _turkish() -> Culture:
    """Turkish names: a small pool, each name as it is (no merging, no built surnames)."""

    def pool(table: dict[str, str]) -> Pool:
        return Pool.zipf([NameForm(n) for n in _spellings(table, "turkish")], 1.0, 2.0)

    return Culture(
        label="turkish",
        nationality="TUR",
        share=0.01,
        given_f=pool(_pools.GIVEN_F),
        given_m=pool(_pools.GIVEN_M),
        family=pool(_pools.FAMILY),
        birth_places=("İstanbul", "Ankara", "İzmir"),
        middle_rate=0.1,
        spouse_name_rate=0.9,
    )


#: Every culture of the synthetic population; shares add up to 1.
CULTURES: tuple[Culture, ...] = (*(_build(s) for s in _SPECS), _turkish())
