"""The ``names-dob-sex`` profile's records (``xlink synth --profile names-dob-sex``,
docs/synth.md): drawn from the machinery of :mod:`xlink.synth.corrupt` with the stronger rates
of :data:`NAMES_DOB_SEX_RATES`, and with what a census or a vital-events registry does to a
record: initials and placeholder given names (``Baby``, ``Male Child``), middle names cut to an
initial or left out, impossible dates (``31/02``) and garbled ones that do not parse at all
(``10/Z7/1983``). The date is written here, in the file's declared order."""

from __future__ import annotations

import random
from collections.abc import Mapping

from xlink.synth._slips import typo
from xlink.synth.corrupt import DOB_TAGS, NAME_TAGS, Draft, _Record
from xlink.synth.population import Person
from xlink.synth.romanise import fold_accents

__all__ = [
    "INFANT_BORN_FROM",
    "NAMES_DOB_SEX_DOB_TAGS",
    "NAMES_DOB_SEX_FORMAT_TAGS",
    "NAMES_DOB_SEX_NAME_TAGS",
    "NAMES_DOB_SEX_RATES",
    "UNPARSEABLE_DOB_TAGS",
    "draft_names_dob_sex",
]

#: The ``names-dob-sex`` profile's rates: those it changes from :data:`RATES` and those only it
#: uses. Rates it does not name are :data:`RATES`'s (transliteration, name order, compound
#: surnames). It is stronger on dates and names than the cross-border data: a census and a
#: vital-events registry have no document or address to fall back on.
NAMES_DOB_SEX_RATES: dict[str, float] = {
    "given_typo": 0.03,
    "family_typo": 0.03,
    "nickname": 0.08,
    "given_initial": 0.02,  # the given name cut to its initial (J, J.)
    "given_placeholder": 0.15,  # of records of infants (born from INFANT_BORN_FROM)
    "maiden_name": 0.25,
    "cyrillic_script": 0.0,  # both files are in Latin script
    "accents_dropped": 0.30,
    "middle_initial": 0.30,  # of records of people with a middle name
    "middle_missing": 0.25,  # of records of people with a middle name
    "dob_missing": 0.02,
    "dob_year_month": 0.005,
    "dob_year_only": 0.015,
    "dob_day_month_swap": 0.08,  # of dates with day <= 12 and day != month
    "dob_typo": 0.03,
    "dob_impossible": 0.008,  # of full dates: 31/02, 31/04, day 00, the other order
    "dob_garbled": 0.022,  # of full dates (not impossible): a letter for a digit, ...
    "sex_missing": 0.04,
}
#: People born from this year on are the population's infants (no adult is born after 2005):
#: under two at a 2008 census, the records a placeholder given name can stand on.
INFANT_BORN_FROM = 2006
NAMES_DOB_SEX_NAME_TAGS = NAME_TAGS | {"given_initial", "given_placeholder"}
#: A date written so that it does not parse: impossible (31/02) or garbled (10/Z7/1983).
UNPARSEABLE_DOB_TAGS = frozenset({"dob_impossible", "dob_garbled"})
NAMES_DOB_SEX_DOB_TAGS = DOB_TAGS | UNPARSEABLE_DOB_TAGS
NAMES_DOB_SEX_FORMAT_TAGS = frozenset(
    {"accents_dropped", "compound_hyphenated", "name_order_swap", "middle_initial",
     "middle_missing"}
)  # fmt: skip


def draft_names_dob_sex(
    rng: random.Random,
    person: Person,
    side: str,
    date_order: str,
    *,
    rates: Mapping[str, float] | None = None,
) -> Draft:
    """``side``'s record of ``person`` in the ``names-dob-sex`` profile, independently corrupted.

    Only names, date of birth and sex are drawn (the other fields of the draft are empty), at
    :data:`NAMES_DOB_SEX_RATES` (``rates`` replaces some of them). An infant's record may carry a
    placeholder given name (:data:`PLACEHOLDER_NAMES`) and no middle name. The date is written
    in ``date_order`` (``"DMY"`` or ``"MDY"``) into ``dob_text``, possibly impossible or garbled
    (:meth:`_Record.written_dob`).
    """
    r = _Record(rng, person, side, {**NAMES_DOB_SEX_RATES, **(rates or {})})
    placeholder = person.dob.year >= INFANT_BORN_FROM and r.hit("given_placeholder")
    family = r.family()
    if r.hit("family_typo"):
        r.tags.append("family_typo")
        family = typo(rng, family)
    middle = ""
    if placeholder:
        r.tags.append("given_placeholder")
        given = r.placeholder()
    else:
        given = r.given()
        if r.hit("given_typo"):
            r.tags.append("given_typo")
            given = typo(rng, given)
        if r.hit("given_initial"):
            r.tags.append("given_initial")
            given = given[0] + ("." if rng.random() < 0.5 else "")
        if person.middle is not None:
            middle = person.middle.spelling(person.spelling)
            u = rng.random()
            if u < r.rate("middle_missing"):
                r.tags.append("middle_missing")
                middle = ""
            elif u < r.rate("middle_missing") + r.rate("middle_initial"):
                r.tags.append("middle_initial")
                middle = middle[0]
    if r.hit("accents_dropped"):
        folded = [fold_accents(t) for t in (given, middle, family)]
        if folded != [given, middle, family]:
            r.tags.append("accents_dropped")
            given, middle, family = folded
    swap = "name_order_swap_family_first" if person.culture.family_first else "name_order_swap"
    if not placeholder and r.hit(swap):
        r.tags.append("name_order_swap")
        given, family = family, given
    dob, dob_text = r.written_dob(date_order)
    sex = "" if r.hit("sex_missing") else person.sex
    if not sex:
        r.tags.append("sex_missing")
    return Draft(
        pid=person.pid,
        side=side,
        given=given,
        middle=middle,
        family=family,
        dob=dob,
        sex=sex,
        nationality="",
        birth_place="",
        passport="",
        passport_country="",
        passport_expiry=None,
        address=None,
        alias="",
        tags=r.tags,
        dob_text=dob_text,
    )
