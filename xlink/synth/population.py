"""The underlying SYNTHETIC people, in households, and which agency lists each of them.

People are generated a household at a time, so that the traps of real data exist: members of a
household share a surname and an address; twins share the birth date as well, with different
(sometimes very similar) given names; married women may carry their husband's surname, with the
maiden name still on some records. Each person is then listed by Canada only, by the US only,
or by both (``overlap`` of each side's people), and a few people twice by the same agency.
"""

from __future__ import annotations

import bisect
import dataclasses
import datetime
import itertools
import random
import string
from dataclasses import dataclass

from xlink.synth.names import CULTURES, Culture, NameForm, patronymic
from xlink.synth.places import Home, random_home

__all__ = ["Person", "Population", "build_population", "list_repeatedly", "passport_number"]

#: Household kinds and their shares: one adult, a couple, a couple with children, two adult
#: siblings.
HOUSEHOLD_KINDS = (("single", 0.50), ("couple", 0.18), ("family", 0.27), ("siblings", 0.05))
TWIN_RATE = 0.10  # of families with two or more children, the first two are twins
SIMILAR_TWIN_NAMES = 0.25  # of twins, given names sharing their first letters (Jan, Jana)
MIXED_COUPLE_RATE = 0.10  # spouse from another culture
PASSPORT_HOLDERS = 0.88  # share of people with a passport
HOME_CANADA = 0.55  # share of households living in Canada (the rest in the US)
_EPOCH = datetime.date(1900, 1, 1)
_CULTURE_CUM = tuple(itertools.accumulate(c.share for c in CULTURES))


@dataclass(slots=True)
class Person:
    """One synthetic person: the truth that agency records are corrupted copies of."""

    pid: int
    household: int
    culture: Culture
    sex: str  # "F" or "M"
    given: NameForm
    middle: NameForm | None
    family: tuple[NameForm, ...]  # the surname carried now; two parts for García López
    maiden: tuple[NameForm, ...] | None  # a married woman's birth surname, when it changed
    spelling: int  # which spelling the person's own documents use (Cyrillic: the scheme)
    dob: datetime.date
    nationality: str
    birth_place: str
    passport: str  # "" when the person has none
    passport_expiry: datetime.date
    home: Home
    twin: int = -1  # pid of the twin, -1 when none


@dataclass(frozen=True, slots=True)
class Population:
    """Everyone, the households, the twins, and each agency's list of person ids (a person
    listed twice by one agency appears twice)."""

    people: tuple[Person, ...]
    households: int
    twins: tuple[tuple[int, int], ...]
    ca: tuple[int, ...]
    us: tuple[int, ...]
    shared: int  # people listed by both agencies
    duplicates_ca: int
    duplicates_us: int


def passport_number(rng: random.Random, country: str) -> str:
    """A passport number shaped like ``country``'s (CAN: 2 letters + 6 digits; USA: 9 digits;
    others: 9 letters and digits)."""
    if country == "CAN":
        return "".join(rng.choices(string.ascii_uppercase, k=2)) + f"{rng.randrange(10**6):06d}"
    if country == "USA":
        return f"{rng.randrange(10**8, 10**9)}"
    return "".join(rng.choices(string.ascii_uppercase + string.digits, k=9))


def _culture(rng: random.Random) -> Culture:
    i = bisect.bisect_right(_CULTURE_CUM, rng.random() * _CULTURE_CUM[-1])
    return CULTURES[min(i, len(CULTURES) - 1)]


def _adult_dob(rng: random.Random, culture: Culture) -> datetime.date:
    year = int(rng.triangular(1940, 2005, 1978))
    if rng.random() < culture.jan1_rate:
        return datetime.date(year, 1, 1)
    return datetime.date(year, 1, 1) + datetime.timedelta(days=rng.randrange(365))


def _spelling(rng: random.Random, culture: Culture) -> int:
    if culture.cyrillic:
        cum = tuple(itertools.accumulate(culture.scheme_weights))
        return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)
    return 0 if rng.random() < 0.85 else rng.randrange(1, 4)


def _surname(rng: random.Random, culture: Culture) -> tuple[NameForm, ...]:
    first = culture.family.pick(rng.random())
    if rng.random() < culture.compound_rate:
        second = culture.family.pick(rng.random())
        if second is not first:
            return (first, second)
    return (first,)


def _carried(family: tuple[NameForm, ...], culture: Culture, sex: str) -> tuple[NameForm, ...]:
    """The surname as a person of ``sex`` carries it (Zhukov, Zhukova)."""
    if sex == "M" or not culture.slavic:
        return family
    return tuple(culture.feminine.get(f.cyrillic or f.spellings[0], f) for f in family)


class _Builder:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.people: list[Person] = []
        self.twins: list[tuple[int, int]] = []
        self.households = 0

    def person(
        self,
        culture: Culture,
        sex: str,
        family: tuple[NameForm, ...],
        dob: datetime.date,
        home: Home,
        given: NameForm | None = None,
    ) -> Person:
        rng = self.rng
        pool = culture.given_f if sex == "F" else culture.given_m
        middle: NameForm | None = None
        if rng.random() < culture.middle_rate:
            if culture.cyrillic:
                middle = patronymic(culture.given_m.pick(rng.random()), sex == "F", culture.schemes)
            else:
                middles = (culture.middle_f if sex == "F" else culture.middle_m) or pool
                middle = middles.pick(rng.random())
        nationality = home.country if rng.random() < 0.7 else culture.nationality
        has_passport = rng.random() < PASSPORT_HOLDERS
        p = Person(
            pid=len(self.people),
            household=self.households,
            culture=culture,
            sex=sex,
            given=given or pool.pick(rng.random()),
            middle=middle,
            family=_carried(family, culture, sex),
            maiden=None,
            spelling=_spelling(rng, culture),
            dob=dob,
            nationality=nationality,
            birth_place=rng.choice(culture.birth_places),
            passport=passport_number(rng, nationality) if has_passport else "",
            passport_expiry=datetime.date(2025, 1, 1)
            + datetime.timedelta(days=rng.randrange(3650)),
            home=home,
        )
        self.people.append(p)
        return p

    def household(self) -> None:
        rng = self.rng
        culture = _culture(rng)
        home = random_home(rng, "CAN" if rng.random() < HOME_CANADA else "USA")
        u = rng.random()
        kind = "single"
        for name, share in HOUSEHOLD_KINDS:
            if u < share:
                kind = name
                break
            u -= share
        family = _surname(rng, culture)
        first_sex = rng.choice("FM") if kind in ("single", "siblings") else "M"
        head = self.person(culture, first_sex, family, _adult_dob(rng, culture), home)
        if kind == "siblings":
            self.person(culture, rng.choice("FM"), family, _adult_dob(rng, culture), home)
        if kind in ("couple", "family"):
            wife_culture = _culture(rng) if rng.random() < MIXED_COUPLE_RATE else culture
            own = _surname(rng, wife_culture)
            year = min(2005, max(1940, head.dob.year + rng.randrange(-6, 4)))
            dob = _adult_dob(rng, wife_culture).replace(year=year, day=1)
            wife = self.person(wife_culture, "F", own, dob, home)
            if rng.random() < culture.spouse_name_rate:
                wife.maiden, wife.family = wife.family, _carried(family, culture, "F")
            if kind == "family":
                self.children(culture, head, wife, home)
        self.households += 1

    def children(self, culture: Culture, father: Person, mother: Person, home: Home) -> None:
        rng = self.rng
        surname = father.family
        if culture.compound_rate and len(surname) == 2 and mother.maiden is None:
            surname = (surname[0], mother.family[0])  # Spanish: father's first, mother's first
        count = rng.choice((1, 1, 2, 2, 2, 3))
        born: list[Person] = []
        last = min(2007, mother.dob.year + 42)
        for _ in range(count):
            year = rng.randrange(min(mother.dob.year + 18, last), last + 1)
            dob = datetime.date(year, 1, 1) + datetime.timedelta(days=rng.randrange(365))
            born.append(self.person(culture, rng.choice("FM"), surname, dob, home))
        if count >= 2 and rng.random() < TWIN_RATE:
            a, b = born[0], born[1]
            b.dob = a.dob
            b.given = self.twin_name(culture, a, b)
            a.twin, b.twin = b.pid, a.pid
            self.twins.append((a.pid, b.pid))

    def twin_name(self, culture: Culture, a: Person, b: Person) -> NameForm:
        rng = self.rng
        pool = culture.given_f if b.sex == "F" else culture.given_m
        taken = a.given.spellings[0]
        if rng.random() < SIMILAR_TWIN_NAMES:
            similar = [f for f in pool.forms if f.spellings[0][:2] == taken[:2]]
            similar = [f for f in similar if f.spellings[0] != taken]
            if similar:
                return rng.choice(similar)
        while True:
            form = pool.pick(rng.random())
            if form.spellings[0] != taken or len(pool) == 1:
                return form


def build_population(
    rng: random.Random, n: int, overlap: float, duplicate_rate: float
) -> Population:
    """People and each agency's list, with exactly ``n`` records per agency.

    Each agency lists ``people = n - duplicates`` distinct people, ``round(overlap * people)``
    of whom the other agency lists too; ``duplicates = round(duplicate_rate * n)`` of its people
    are listed a second time.
    """
    duplicates = min(round(duplicate_rate * n), n - 1)
    per_side = n - duplicates
    shared = round(overlap * per_side)
    total = 2 * per_side - shared
    builder = _Builder(rng)
    while len(builder.people) < total:
        builder.household()
    people = builder.people[:total]
    twins = tuple((a, b) for a, b in builder.twins if b < total)
    for p in builder.people[total:]:  # a household cut short: its twin link goes too
        if 0 <= p.twin < total:
            people[p.twin].twin = -1
    order = list(range(total))
    rng.shuffle(order)
    ca_people = order[:per_side]
    us_people = order[:shared] + order[per_side:]
    ca = ca_people + rng.sample(ca_people, duplicates)
    us = us_people + rng.sample(us_people, duplicates)
    return Population(
        people=tuple(people),
        households=people[-1].household + 1 if people else 0,
        twins=twins,
        ca=tuple(ca),
        us=tuple(us),
        shared=shared,
        duplicates_ca=duplicates,
        duplicates_us=duplicates,
    )


def list_repeatedly(
    rng: random.Random, population: Population, side: str, times: tuple[tuple[int, float], ...]
) -> Population:
    """``population`` with each listing of ``side`` (``"ca"`` or ``"us"``) repeated: ``times``
    gives how many records a listed person has and the share of people with that many (a
    registry of vital events lists a person once per event). The repeats are counted as that
    side's within-side duplicates; the other side is unchanged."""
    total = sum(share for _, share in times)
    listed: list[int] = []
    for pid in population.ca if side == "ca" else population.us:
        u = rng.random() * total
        count = times[-1][0]
        for k, share in times:
            if u < share:
                count = k
                break
            u -= share
        listed += [pid] * count
    extra = len(listed) - len(population.ca if side == "ca" else population.us)
    if side == "ca":
        return dataclasses.replace(
            population, ca=tuple(listed), duplicates_ca=population.duplicates_ca + extra
        )
    return dataclasses.replace(
        population, us=tuple(listed), duplicates_us=population.duplicates_us + extra
    )
