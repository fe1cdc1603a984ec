"""Addresses in Canada and the United States, weighted by population: SYNTHETIC addresses.

Cities are drawn by population (Toronto is forty times likelier than Charlottetown); within a
city, postcode areas (Canadian forward sortation areas, US ZIP codes) follow a Zipf-like curve,
so that some postcodes hold many people. Street names, house numbers and units are invented.
The geography tables are fixed (built from a constant seed), so that every seed shares them.
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

__all__ = ["STREET_TYPES", "Home", "random_home"]

# (city, province/state, population in thousands, postcode prefixes)
_CA_CITIES = (
    ("Toronto", "ON", 2794, "M"), ("Montréal", "QC", 1762, "H"), ("Calgary", "AB", 1306, "T"),
    ("Ottawa", "ON", 1017, "K"), ("Edmonton", "AB", 1010, "T"), ("Winnipeg", "MB", 749, "R"),
    ("Mississauga", "ON", 717, "L"), ("Vancouver", "BC", 662, "V"), ("Brampton", "ON", 656, "L"),
    ("Hamilton", "ON", 569, "L"), ("Surrey", "BC", 568, "V"), ("Québec", "QC", 549, "G"),
    ("Halifax", "NS", 439, "B"), ("Laval", "QC", 438, "H"), ("London", "ON", 422, "N"),
    ("Markham", "ON", 338, "L"), ("Vaughan", "ON", 323, "L"), ("Gatineau", "QC", 291, "J"),
    ("Saskatoon", "SK", 266, "S"), ("Kitchener", "ON", 256, "N"), ("Longueuil", "QC", 254, "J"),
    ("Burnaby", "BC", 249, "V"), ("Windsor", "ON", 229, "N"), ("Regina", "SK", 226, "S"),
    ("Oakville", "ON", 213, "L"), ("Richmond", "BC", 209, "V"), ("Burlington", "ON", 186, "L"),
    ("Oshawa", "ON", 175, "L"), ("Sherbrooke", "QC", 172, "J"), ("Sudbury", "ON", 166, "P"),
    ("Abbotsford", "BC", 153, "V"), ("Lévis", "QC", 149, "G"), ("Kelowna", "BC", 144, "V"),
    ("Guelph", "ON", 143, "N"), ("Trois-Rivières", "QC", 139, "G"), ("Kingston", "ON", 132, "K"),
    ("St. John's", "NL", 110, "A"), ("Thunder Bay", "ON", 108, "P"), ("Moncton", "NB", 79, "E"),
    ("Fredericton", "NB", 63, "E"), ("Charlottetown", "PE", 38, "C"), ("Whitehorse", "YT", 28, "Y"),
)  # fmt: skip
_US_CITIES = (
    ("New York", "NY", 8336, "100 101 102 103 104 112 113 114"),
    ("Los Angeles", "CA", 3822, "900 902 913"), ("Chicago", "IL", 2665, "606 607"),
    ("Houston", "TX", 2302, "770"), ("Phoenix", "AZ", 1644, "850"),
    ("Philadelphia", "PA", 1567, "191"), ("San Antonio", "TX", 1472, "782"),
    ("San Diego", "CA", 1381, "921"), ("Dallas", "TX", 1300, "752"), ("Austin", "TX", 974, "787"),
    ("San Jose", "CA", 971, "951"), ("Fort Worth", "TX", 956, "761"),
    ("Jacksonville", "FL", 954, "322"), ("Columbus", "OH", 907, "432"),
    ("Charlotte", "NC", 897, "282"), ("Indianapolis", "IN", 880, "462"),
    ("San Francisco", "CA", 808, "941"), ("Seattle", "WA", 749, "981"),
    ("Denver", "CO", 713, "802"), ("Oklahoma City", "OK", 694, "731"),
    ("Nashville", "TN", 683, "372"), ("El Paso", "TX", 677, "799"),
    ("Washington", "DC", 671, "200"), ("Las Vegas", "NV", 656, "891"),
    ("Boston", "MA", 650, "021 022"), ("Portland", "OR", 635, "972"),
    ("Louisville", "KY", 624, "402"), ("Memphis", "TN", 621, "381"), ("Detroit", "MI", 620, "482"),
    ("Baltimore", "MD", 569, "212"), ("Milwaukee", "WI", 563, "532"),
    ("Albuquerque", "NM", 561, "871"), ("Tucson", "AZ", 546, "857"), ("Fresno", "CA", 545, "937"),
    ("Sacramento", "CA", 528, "958"), ("Atlanta", "GA", 500, "303"), ("Miami", "FL", 449, "331"),
    ("Minneapolis", "MN", 425, "554"), ("Cleveland", "OH", 361, "441"),
    ("Newark", "NJ", 304, "071"), ("Buffalo", "NY", 276, "142"), ("Spokane", "WA", 229, "992"),
    ("Dearborn", "MI", 109, "481"), ("Bellingham", "WA", 93, "982"),
    ("Burlington", "VT", 45, "054"),
)  # fmt: skip

_STREETS = """Main, Oak, Maple, Pine, Cedar, Elm, Washington, Lake, Hill, Park, Church, King,
    Queen, Victoria, Wellington, Front, Water, Bay, Spring, Ridge, Highland, Sunset, Lincoln,
    Jefferson, Madison, Franklin, Adams, Jackson, Centre, Mill, River, Forest, Meadow, Willow,
    Birch, Spruce, Walnut, Chestnut, Cherry, Poplar, Dundas, Bloor, Yonge, Bathurst, Dufferin,
    Finch, Sheppard, Eglinton, Lawrence, Portage, Jasper, Granville, Robson, Hastings, Broadway,
    Market, Union, Grand, Prospect, Orchard, Valley, Harbour, College, Albert, George, Union,
    Second, Third, Fourth, Fifth, Sixth, Seventh, Eighth, Ninth, Tenth, First"""
_QC_STREETS = """Saint-Denis, Sainte-Catherine, Sherbrooke, Notre-Dame, Saint-Laurent,
    René-Lévesque, Papineau, Jean-Talon, Beaubien, Masson, Rachel, Mont-Royal, Laurier,
    Saint-Joseph, Champlain, Principale, des Érables, du Parc, de l'Église, Saint-Hubert"""

#: Street types: the full word and its usual abbreviation.
STREET_TYPES = (
    ("Street", "St"), ("Avenue", "Ave"), ("Road", "Rd"), ("Drive", "Dr"),
    ("Boulevard", "Blvd"), ("Crescent", "Cres"), ("Court", "Ct"), ("Lane", "Ln"),
    ("Place", "Pl"), ("Way", "Way"),
)  # fmt: skip
_FSA_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"  # letters Canada Post uses in postcodes
_TYPE_WEIGHTS = (40, 20, 12, 8, 5, 4, 4, 3, 2, 2)
_QC_TYPES = (("Rue", "Rue"), ("Boulevard", "Boul"), ("Avenue", "Av"))


@dataclass(frozen=True, slots=True)
class Home:
    """One dwelling: ``number street_type``-style parts kept apart so corruptions can vary them."""

    number: int
    street: str
    street_type: int  # index into STREET_TYPES (or the Québec types when ``french``)
    unit: str
    locality: str
    region: str
    postcode: str
    country: str  # CAN or USA
    french: bool = False  # Québec: "Rue Saint-Denis", type first

    def line(self, abbreviate: bool = False, with_unit: bool = True) -> str:
        """The street line, as a Canadian (``12-345 Oak Street``) or US (``345 Oak St Apt 12``)
        agency writes it."""
        types = _QC_TYPES if self.french else STREET_TYPES
        word = types[self.street_type][1 if abbreviate else 0]
        street = f"{word} {self.street}" if self.french else f"{self.street} {word}"
        if not (with_unit and self.unit):
            return f"{self.number} {street}"
        if self.country == "CAN":
            return f"{self.unit}-{self.number} {street}"
        return f"{self.number} {street} Apt {self.unit}"


@dataclass(frozen=True, slots=True)
class _City:
    name: str
    region: str
    country: str
    postcodes: tuple[str, ...]
    cumulative: tuple[float, ...]


def _zipf_cumulative(n: int, s: float) -> tuple[float, ...]:
    return tuple(itertools.accumulate(1.0 / (r + 2) ** s for r in range(n)))


def _build_cities() -> tuple[
    tuple[_City, ...], tuple[float, ...], tuple[_City, ...], tuple[float, ...]
]:
    geo = random.Random(0x6E0)  # fixed geography, the same for every seed
    ca: list[_City] = []
    for name, region, pop, letter in _CA_CITIES:
        count = min(60, 3 + pop // 40)
        codes = sorted(
            {f"{letter}{geo.randrange(10)}{geo.choice(_FSA_LETTERS)}" for _ in range(count)}
        )
        geo.shuffle(codes)
        ca.append(_City(name, region, "CAN", tuple(codes), _zipf_cumulative(len(codes), 0.8)))
    us: list[_City] = []
    for name, region, pop, prefixes in _US_CITIES:
        count = min(80, 4 + pop // 50)
        codes = sorted(
            {f"{geo.choice(prefixes.split())}{geo.randrange(100):02d}" for _ in range(count)}
        )
        geo.shuffle(codes)
        us.append(_City(name, region, "USA", tuple(codes), _zipf_cumulative(len(codes), 0.8)))
    ca_cum = tuple(itertools.accumulate(float(c[2]) for c in _CA_CITIES))
    us_cum = tuple(itertools.accumulate(float(c[2]) for c in _US_CITIES))
    return tuple(ca), ca_cum, tuple(us), us_cum


_CA, _CA_CUM, _US, _US_CUM = _build_cities()
_STREET_NAMES = tuple(" ".join(s.split()) for s in _STREETS.split(","))
_QC_STREET_NAMES = tuple(" ".join(s.split()) for s in _QC_STREETS.split(","))
_TYPE_CUM = tuple(itertools.accumulate(_TYPE_WEIGHTS))


def _pick(cumulative: tuple[float, ...], u: float) -> int:
    return min(bisect.bisect_right(cumulative, u * cumulative[-1]), len(cumulative) - 1)


def random_home(rng: random.Random, country: str) -> Home:
    """A new dwelling in ``country`` (``CAN`` or ``USA``), city and postcode area by population."""
    if country == "CAN":
        city = _CA[_pick(_CA_CUM, rng.random())]
        area = city.postcodes[_pick(city.cumulative, rng.random())]
        ldu = f"{rng.randrange(10)}{rng.choice(_FSA_LETTERS)}{rng.randrange(10)}"
        postcode = f"{area} {ldu}"
    else:
        city = _US[_pick(_US_CUM, rng.random())]
        postcode = city.postcodes[_pick(city.cumulative, rng.random())]
    french = city.region == "QC" and rng.random() < 0.8
    if french:
        street = rng.choice(_QC_STREET_NAMES)
        street_type = _pick((0.7, 0.85, 1.0), rng.random())
    else:
        street = rng.choice(_STREET_NAMES)
        street_type = _pick(_TYPE_CUM, rng.random())
    unit = str(rng.randrange(1, 40) if rng.random() < 0.7 else rng.randrange(100, 2400))
    return Home(
        number=int(10 ** rng.uniform(0.3, 4.0)),
        street=street,
        street_type=street_type,
        unit=unit if rng.random() < 0.22 else "",
        locality=city.name,
        region=city.region,
        postcode=postcode,
        country=country,
        french=french,
    )
