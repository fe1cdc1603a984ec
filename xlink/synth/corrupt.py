"""One agency's record of one SYNTHETIC person, corrupted the way real records are.

Every record is drawn independently: each kind of corruption in :data:`RATES` strikes with its
own probability, so a record may carry several at once (a nickname *and* a day/month swap) and
the two records of a matched person differ in whatever both draws produced. A record's ``tags``
name every corruption applied; :data:`FORMAT_TAGS` are differences of form that a normaliser is
expected to undo (accents, abbreviations), the others change a value. docs/synth.md lists the
rates and why.

The ``names-dob-sex`` profile (:mod:`xlink.synth.census`) draws from the same machinery.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Mapping
from dataclasses import dataclass, field

from xlink.synth._slips import (
    dob_typo,
    doc_typo,
    garble_date,
    impossible_date,
    typo,
    typo_digits,
    write_date,
)
from xlink.synth.names import NameForm
from xlink.synth.places import Home, random_home
from xlink.synth.population import Person, passport_number
from xlink.synth.romanise import fold_accents

__all__ = [
    "ADDRESS_TAGS",
    "DOB_TAGS",
    "FORMAT_TAGS",
    "NAME_TAGS",
    "PLACEHOLDER_NAMES",
    "RATES",
    "Draft",
    "draft_record",
]

#: Probability of each corruption per record (per name part for typos and transliterations),
#: among the records it can apply to (a nickname needs a name that has one). Side-specific
#: rates are ``(Canada, US)``.
RATES: dict[str, float | tuple[float, float]] = {
    "given_typo": 0.015,
    "family_typo": 0.015,
    "transliteration": 0.05,  # per name part with another spelling in use
    "cyrillic_script": 0.25,  # of transliterations of a Cyrillic name: written in Cyrillic
    "nickname": 0.06,
    "name_order_swap": 0.012,
    "name_order_swap_family_first": 0.06,  # Chinese, Vietnamese
    "compound_dropped": 0.12,  # of people with two surnames: the second one left out
    "compound_hyphenated": 0.10,
    "maiden_name": 0.12,  # of women who took a husband's surname: the birth surname instead
    "middle_in_given": (0.15, 0.0),  # Canada has no middle-name column
    "accents_dropped": (0.15, 0.45),
    "dob_missing": 0.008,
    "dob_year_month": 0.007,
    "dob_year_only": 0.004,
    "dob_day_month_swap": 0.025,  # of dates with day <= 12 and day != month
    "dob_typo": 0.008,
    "sex_missing": 0.02,
    "nationality_missing": 0.10,
    "document_present": (0.40, 0.60),  # share of records with a passport number
    "doc_typo": 0.05,  # of documents present
    "doc_renewed": 0.02,  # of documents present: a newer passport, another number
    "address_missing": (0.05, 0.04),
    "address_moved": 0.065,
    "address_variant": 0.05,
    "street_type_abbreviated": (0.05, 0.30),
    "alias": 0.04,
}
NAME_TAGS = frozenset(
    {
        "given_typo",
        "family_typo",
        "transliteration",
        "nickname",
        "compound_dropped",
        "maiden_name",
    }
)
DOB_TAGS = frozenset(
    {"dob_missing", "dob_year_month", "dob_year_only", "dob_day_month_swap", "dob_typo"}
)
ADDRESS_TAGS = frozenset({"address_missing", "address_moved", "address_variant"})
FORMAT_TAGS = frozenset(
    {
        "accents_dropped",
        "compound_hyphenated",
        "middle_in_given",
        "street_type_abbreviated",
        "alias",
        "cyrillic_script",
        "name_order_swap",
    }
)

#: Placeholder given names of an unnamed infant, by sex: (name, weight).
PLACEHOLDER_NAMES: dict[str, tuple[tuple[str, float], ...]] = {
    "F": (("Baby", 0.35), ("Female Child", 0.35), ("Unknown", 0.30)),
    "M": (("Baby", 0.35), ("Male Child", 0.35), ("Unknown", 0.30)),
}


@dataclass(slots=True)
class Draft:
    """What one agency records about one person, before it is written in the agency's columns."""

    pid: int
    side: str  # "ca" or "us"
    given: str
    middle: str
    family: str
    dob: tuple[int, int | None, int | None] | None  # year, month, day as far as recorded
    sex: str
    nationality: str
    birth_place: str
    passport: str
    passport_country: str
    passport_expiry: datetime.date | None
    address: tuple[str, str, str, str, str] | None  # line, locality, region, postcode, country
    alias: str
    tags: list[str] = field(default_factory=list)
    #: The date of birth exactly as written, when the drafting wrote it (names-dob-sex: in the
    #: file's date order, possibly impossible or garbled); None: the layout writes ``dob``.
    dob_text: str | None = None


def _rate(name: str, side: str) -> float:
    rate = RATES[name]
    if isinstance(rate, tuple):
        return rate[0] if side == "ca" else rate[1]
    return rate


class _Record:
    """Draws the corruptions of one record; ``tags`` collects the ones applied."""

    def __init__(
        self, rng: random.Random, person: Person, side: str, rates: Mapping[str, float]
    ) -> None:
        self.rng = rng
        self.p = person
        self.side = side
        self.rates = rates
        self.tags: list[str] = []

    def rate(self, name: str) -> float:
        return self.rates[name] if name in self.rates else _rate(name, self.side)

    def hit(self, name: str) -> bool:
        return self.rng.random() < self.rate(name)

    def spell(self, form: NameForm, allow_translit: bool) -> str:
        base = form.spelling(self.p.spelling)
        if not allow_translit:
            return base
        others = [s for s in dict.fromkeys(form.spellings) if s != base]
        if form.cyrillic and self.rng.random() < self.rate("cyrillic_script"):
            self.tags += ["transliteration", "cyrillic_script"]
            return form.cyrillic
        if not others:
            return base
        self.tags.append("transliteration")
        return self.rng.choice(others)

    def translit_candidates(self, form: NameForm) -> bool:
        return bool(form.cyrillic) or len(set(form.spellings)) > 1

    def given(self) -> str:
        form = self.p.given
        if form.nicknames and self.hit("nickname"):
            self.tags.append("nickname")
            form = self.rng.choice(form.nicknames)
        translit = self.translit_candidates(form) and self.hit("transliteration")
        return self.spell(form, translit)

    def family(self) -> str:
        p = self.p
        parts = p.family
        if p.maiden is not None and self.hit("maiden_name"):
            self.tags.append("maiden_name")
            parts = p.maiden
        translit_at = -1
        candidates = [i for i, f in enumerate(parts) if self.translit_candidates(f)]
        if candidates and self.hit("transliteration"):
            translit_at = self.rng.choice(candidates)
        words = [self.spell(f, i == translit_at) for i, f in enumerate(parts)]
        if len(words) == 1:
            return words[0]
        if self.hit("compound_dropped"):
            self.tags.append("compound_dropped")
            return words[0]
        if self.hit("compound_hyphenated"):
            self.tags.append("compound_hyphenated")
            return "-".join(words)
        return " ".join(words)

    def dob(self) -> tuple[int, int | None, int | None] | None:
        d = self.p.dob
        if self.hit("dob_missing"):
            self.tags.append("dob_missing")
            return None
        y, m, dd = d.year, d.month, d.day
        if dd <= 12 and dd != m and self.hit("dob_day_month_swap"):
            self.tags.append("dob_day_month_swap")
            m, dd = dd, m
        elif self.hit("dob_typo"):
            self.tags.append("dob_typo")
            y, m, dd = dob_typo(self.rng, d)
        if self.hit("dob_year_only"):
            self.tags.append("dob_year_only")
            return (y, None, None)
        if self.hit("dob_year_month"):
            self.tags.append("dob_year_month")
            return (y, m, None)
        return (y, m, dd)

    def written_dob(self, order: str) -> tuple[tuple[int, int | None, int | None] | None, str]:
        """The date of birth as recorded (:meth:`dob`), then possibly made impossible or
        garbled, and written in date order ``order``: ``(parts, text)``. ``parts`` are what
        the clerk meant to write (an impossible date's parts are impossible)."""
        parts = self.dob()
        if parts is None:
            return None, ""
        y, m, d = parts
        if m is None or d is None:
            return parts, write_date(parts, order)
        if self.hit("dob_impossible"):
            self.tags.append("dob_impossible")
            parts = impossible_date(self.rng, y, m, d)
            return parts, write_date(parts, order)
        text = write_date(parts, order)
        if self.hit("dob_garbled"):
            self.tags.append("dob_garbled")
            text = garble_date(self.rng, text)
        return parts, text

    def placeholder(self) -> str:
        """A placeholder given name for an unnamed infant of the person's sex."""
        names = PLACEHOLDER_NAMES[self.p.sex]
        u = self.rng.random() * sum(w for _, w in names)
        for name, weight in names:
            if u < weight:
                return name
            u -= weight
        return names[-1][0]

    def document(self) -> str:
        p = self.p
        present = self.rate("document_present") / 0.88  # 88% of people hold one
        if not p.passport or self.rng.random() >= present:
            return ""
        number = p.passport
        if self.hit("doc_renewed"):
            self.tags.append("doc_renewed")
            number = passport_number(self.rng, p.nationality)
        if self.hit("doc_typo"):
            self.tags.append("doc_typo")
            number = doc_typo(self.rng, number)
        return number

    def address(self) -> tuple[str, str, str, str, str] | None:
        if self.hit("address_missing"):
            self.tags.append("address_missing")
            return None
        home: Home = self.p.home
        if self.hit("address_moved"):
            self.tags.append("address_moved")
            country = (
                home.country if self.rng.random() < 0.8 else ("USA", "CAN")[home.country == "USA"]
            )
            home = random_home(self.rng, country)
        abbreviate = self.hit("street_type_abbreviated")
        if abbreviate:
            self.tags.append("street_type_abbreviated")
        line = home.line(abbreviate=abbreviate)
        postcode = home.postcode
        if self.hit("address_variant"):
            self.tags.append("address_variant")
            kind = self.rng.random()
            if kind < 0.3 and home.unit:
                line = home.line(abbreviate=abbreviate, with_unit=False)
            elif kind < 0.6:
                line = line.replace(str(home.number), typo_digits(self.rng, str(home.number)), 1)
            elif kind < 0.8:
                postcode = postcode.replace(" ", "") if home.country == "CAN" else postcode
                postcode = (
                    postcode
                    if home.country == "CAN"
                    else f"{postcode}-{self.rng.randrange(10000):04d}"
                )
            else:
                postcode = ""
        return (line, home.locality, home.region, postcode, home.country)


def draft_record(
    rng: random.Random,
    person: Person,
    side: str,
    *,
    rates: Mapping[str, float] | None = None,
    middle_column: bool | None = None,
) -> Draft:
    """``side``'s record (``"ca"`` or ``"us"``) of ``person``, independently corrupted.

    ``rates`` replaces some of :data:`RATES` for this record, for an agency file that records
    differently (a traveller manifest always has the passport); ``middle_column`` says whether
    the file has a middle-name column (by default the US file has one and the Canadian not).
    """
    r = _Record(rng, person, side, rates or {})
    if middle_column is None:
        middle_column = side == "us"
    culture = person.culture
    given = r.given()
    family = r.family()
    if r.hit("given_typo"):
        r.tags.append("given_typo")
        given = typo(rng, given)
    if r.hit("family_typo"):
        r.tags.append("family_typo")
        family = typo(rng, family)
    middle = ""
    if person.middle is not None:
        middle = person.middle.spelling(person.spelling)
        if not middle_column:
            if r.hit("middle_in_given"):
                r.tags.append("middle_in_given")
                given = f"{given} {middle}"
            middle = ""
        else:
            u = rng.random()
            middle = middle if u < 0.6 else (middle[0] if u < 0.85 else "")
    if r.hit("accents_dropped"):
        folded = [fold_accents(t) for t in (given, middle, family)]
        if folded != [given, middle, family]:
            r.tags.append("accents_dropped")
            given, middle, family = folded
    swap = "name_order_swap_family_first" if culture.family_first else "name_order_swap"
    if r.hit(swap):
        r.tags.append("name_order_swap")
        given, family = family, given
    alias = ""
    if r.hit("alias"):
        r.tags.append("alias")
        surname = person.maiden or person.family
        alias = (
            f"{surname[0].spelling(rng.randrange(4))}, {person.given.spelling(rng.randrange(4))}"
        )
    dob = r.dob()
    sex = "" if r.hit("sex_missing") else person.sex
    if not sex:
        r.tags.append("sex_missing")
    nationality = "" if r.hit("nationality_missing") else person.nationality
    passport = r.document()
    address = r.address()
    return Draft(
        pid=person.pid,
        side=side,
        given=given,
        middle=middle,
        family=family,
        dob=dob,
        sex=sex,
        nationality=nationality,
        birth_place=person.birth_place if rng.random() < 0.5 else "",
        passport=passport,
        passport_country=person.nationality if passport else "",
        passport_expiry=person.passport_expiry if passport else None,
        address=address,
        alias=alias,
        tags=r.tags,
    )
