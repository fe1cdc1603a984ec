"""Name and place pools for :mod:`xlink.data._generate`: SYNTHETIC data, no real person.

Each name is a tuple of spellings met in practice, the first being the one the person's own
country would write: ICAO 9303 and national transliterations of Cyrillic (Zhukov, Joukov,
Schukow), the many Latin spellings of Arabic names (Mohammed, Muhammad, Mohamed), and accented
Latin with its ASCII foldings (Müller, Mueller, Muller).
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass

Name = tuple[str, ...]


@dataclass(frozen=True)
class Culture:
    label: str
    nationality: str  # ISO 3166-1 alpha-3 of the country the names are most common in
    given_f: tuple[Name, ...]
    given_m: tuple[Name, ...]
    family: tuple[Name, ...]
    birth_places: tuple[str, ...]
    feminine_surnames: bool = False  # Slavic -ov/-ev/-in surnames take -a for women


CULTURES: tuple[Culture, ...] = (
    Culture(
        "english",
        "GBR",
        (
            ("Mary",),
            ("Jennifer", "Jenifer"),
            ("Sarah", "Sara"),
            ("Emily",),
            ("Catherine", "Katherine", "Kathryn"),
        ),
        (("James",), ("Robert",), ("Michael",), ("William",), ("David",), ("Stephen", "Steven")),
        (
            ("Smith",),
            ("Johnson", "Johnston"),
            ("Brown",),
            ("Taylor",),
            ("Campbell",),
            ("MacDonald", "McDonald"),
            ("O'Brien", "OBrien"),
        ),
        ("London", "Toronto", "Chicago", "Glasgow"),
    ),
    Culture(
        "french",
        "FRA",
        (
            ("Geneviève", "Genevieve"),
            ("Hélène", "Helene"),
            ("Chloé", "Chloe"),
            ("Noémie", "Noemie"),
            ("Isabelle",),
        ),
        (
            ("François", "Francois"),
            ("Étienne", "Etienne"),
            ("Jean-Luc", "Jean Luc"),
            ("Gilles",),
            ("Mathieu", "Matthieu"),
        ),
        (
            ("Tremblay",),
            ("Gagnon",),
            ("Côté", "Cote"),
            ("Bouchard",),
            ("Lévesque", "Levesque"),
            ("Bélanger", "Belanger"),
        ),
        ("Montréal", "Québec", "Lyon", "Marseille"),
    ),
    Culture(
        "german",
        "DEU",
        (("Käthe", "Kaethe", "Kathe"), ("Brigitte",), ("Ursula",), ("Anke",)),
        (
            ("Jürgen", "Juergen", "Jurgen"),
            ("Günter", "Guenter", "Gunter"),
            ("Lukas", "Lucas"),
            ("Matthias",),
        ),
        (
            ("Müller", "Mueller", "Muller"),
            ("Schröder", "Schroeder", "Schroder"),
            ("Weiß", "Weiss"),
            ("Köhler", "Koehler", "Kohler"),
            ("Schäfer", "Schaefer", "Schafer"),
        ),
        ("München", "Köln", "Hamburg", "Dresden"),
    ),
    Culture(
        "russian",
        "RUS",
        (
            ("Yekaterina", "Ekaterina", "Jekaterina"),
            ("Natalya", "Natalia", "Nataliya"),
            ("Yuliya", "Iuliia", "Julia"),
            ("Olga",),
        ),
        (
            ("Aleksandr", "Alexander", "Aleksander"),
            ("Dmitriy", "Dmitry", "Dmitri"),
            ("Sergey", "Sergei"),
            ("Yuriy", "Iurii", "Yuri"),
        ),
        (
            ("Zhukov", "Joukov", "Schukow"),
            ("Shcherbakov", "Chtcherbakov", "Scherbakow"),
            ("Tsvetkov", "Cvetkov", "Zwetkow"),
            ("Kuznetsov", "Kouznetsov"),
            ("Kozlov",),
        ),
        ("Moskva", "Sankt-Peterburg", "Novosibirsk"),
        feminine_surnames=True,
    ),
    Culture(
        "ukrainian",
        "UKR",
        (("Oksana",), ("Kateryna", "Katerina"), ("Yuliia", "Yulia", "Iuliia")),
        (
            ("Oleksandr", "Olexandr", "Aleksandr"),
            ("Andriy", "Andrii", "Andrey"),
            ("Mykola", "Nikolai"),
        ),
        (
            ("Shevchenko", "Chevtchenko"),
            ("Kovalenko",),
            ("Tkachenko", "Tkatchenko"),
            ("Bondarenko",),
        ),
        ("Kyiv", "Lviv", "Kharkiv"),
    ),
    Culture(
        "arabic",
        "SYR",
        (
            ("Fatima", "Fatimah", "Fatma"),
            ("Aisha", "Aicha", "Ayesha"),
            ("Layla", "Leila", "Laila"),
            ("Mariam", "Maryam"),
        ),
        (
            ("Mohammed", "Muhammad", "Mohamed", "Mohamad"),
            ("Abdel-Rahman", "Abdul Rahman", "Abdelrahman"),
            ("Hussein", "Husain", "Hussain"),
            ("Youssef", "Yusuf", "Yousef"),
            ("Omar", "Umar"),
        ),
        (
            ("Al-Hashimi", "Alhashimi", "El Hachemi", "Al Hashemi"),
            ("Haddad", "Hadad"),
            ("Abdullah", "Abdallah", "Abdulla"),
            ("El-Sayed", "Elsayed", "Al-Sayyid"),
            ("Khoury", "Khouri", "Khuri"),
            ("Mansour", "Mansur"),
        ),
        ("Damascus", "Aleppo", "Beirut", "Cairo", "Baghdad"),
    ),
    Culture(
        "chinese",
        "CHN",
        (("Li Na",), ("Xiaoling", "Xiao Ling"), ("Mei",)),
        (("Wei",), ("Jun",), ("Xiaoming", "Xiao Ming"), ("Hao",)),
        (("Wang",), ("Zhang", "Chang"), ("Chen", "Chan"), ("Liu", "Lau")),
        ("Beijing", "Shanghai", "Guangzhou"),
    ),
    Culture(
        "vietnamese",
        "VNM",
        (("Thi Lan", "Thị Lan"), ("Thi Hoa", "Thị Hoa")),
        (("Van Minh", "Văn Minh"), ("Duc Anh", "Đức Anh")),
        (("Nguyen", "Nguyễn"), ("Tran", "Trần"), ("Pham", "Phạm")),
        ("Hà Nội", "Hồ Chí Minh"),
    ),
    Culture(
        "hispanic",
        "MEX",
        (("María", "Maria"), ("Lucía", "Lucia"), ("Guadalupe",)),
        (("José", "Jose"), ("Jesús", "Jesus"), ("Alejandro",)),
        (
            ("Peña", "Pena"),
            ("Muñoz", "Munoz"),
            ("García", "Garcia"),
            ("Hernández", "Hernandez"),
            ("García López", "Garcia-Lopez", "Garcia Lopez"),
        ),
        ("Ciudad de México", "Guadalajara", "Tijuana"),
    ),
    Culture(
        "turkish",
        "TUR",
        (("Ayşe", "Ayse"), ("Yıldız", "Yildiz"), ("Elif",)),
        (("Mehmet", "Mehmed"), ("Emre",), ("Çağlar", "Caglar")),
        (("Yılmaz", "Yilmaz"), ("Şahin", "Sahin"), ("Öztürk", "Ozturk", "Oeztuerk")),
        ("İstanbul", "Ankara", "İzmir"),
    ),
    Culture(
        "polish",
        "POL",
        (("Małgorzata", "Malgorzata"), ("Agnieszka",), ("Katarzyna",)),
        (("Łukasz", "Lukasz"), ("Grzegorz",), ("Wojciech",)),
        (("Wójcik", "Wojcik"), ("Dąbrowski", "Dabrowski"), ("Kowalczyk",)),
        ("Warszawa", "Kraków", "Gdańsk"),
    ),
)

_CA_PLACES = (
    ("Toronto", "ON", "M"),
    ("Montréal", "QC", "H"),
    ("Vancouver", "BC", "V"),
    ("Calgary", "AB", "T"),
    ("Ottawa", "ON", "K"),
    ("Winnipeg", "MB", "R"),
    ("Halifax", "NS", "B"),
)
_US_PLACES = (
    ("New York", "NY", "100"),
    ("Detroit", "MI", "482"),
    ("Seattle", "WA", "981"),
    ("Buffalo", "NY", "142"),
    ("Chicago", "IL", "606"),
    ("Boston", "MA", "021"),
    ("Minneapolis", "MN", "554"),
)
_CA_STREETS = (
    "Yonge Street",
    "Rue Sainte-Catherine",
    "Main Street",
    "Boulevard René-Lévesque",
    "King Street West",
    "Portage Avenue",
)
_US_STREETS = (
    "Main Street",
    "Broadway",
    "Woodward Avenue",
    "Pine Street",
    "Lake Shore Drive",
    "Elm Street",
)


def family_for(family: str, sex: str, culture: Culture) -> str:
    """The surname as a person of ``sex`` carries it (Zhukov, Zhukova)."""
    if culture.feminine_surnames and sex == "F" and family.endswith(("v", "w", "n")):
        return family.removesuffix("w") + ("wa" if family.endswith("w") else "a")
    return family


def address(rng: random.Random, country: str) -> tuple[str, str, str, str]:
    """A street line, locality, region and postcode in ``country`` (CAN or USA)."""
    if country == "CAN":
        city, region, letter = rng.choice(_CA_PLACES)
        digits, letters = string.digits, string.ascii_uppercase
        postcode = (
            f"{letter}{rng.choice(digits)}{rng.choice(letters)} "
            f"{rng.choice(digits)}{rng.choice(letters)}{rng.choice(digits)}"
        )
        street = rng.choice(_CA_STREETS)
    else:
        city, region, prefix = rng.choice(_US_PLACES)
        postcode = f"{prefix}{rng.randrange(100):02d}"
        street = rng.choice(_US_STREETS)
    return f"{rng.randrange(1, 9999)} {street}", city, region, postcode


def passport_number(rng: random.Random, country: str) -> str:
    """A passport number shaped like ``country``'s (CAN: 2 letters + 6 digits; USA: 9 digits)."""
    if country == "CAN":
        return "".join(rng.choices(string.ascii_uppercase, k=2)) + f"{rng.randrange(10**6):06d}"
    if country == "USA":
        return f"{rng.randrange(10**8, 10**9)}"
    return "".join(rng.choices(string.ascii_uppercase + string.digits, k=9))


def typo(rng: random.Random, text: str) -> str:
    """One keyboard slip: a letter dropped, doubled, replaced, or two letters swapped."""
    if len(text) < 3:
        return text + rng.choice("aeiou")
    i = rng.randrange(1, len(text) - 1)
    op = rng.choice(("drop", "double", "replace", "swap"))
    if op == "drop":
        return text[:i] + text[i + 1 :]
    if op == "double":
        return text[:i] + text[i] + text[i:]
    if op == "replace":
        choices = [c for c in "aeinorst" if c != text[i].lower()]
        return text[:i] + rng.choice(choices) + text[i + 1 :]
    if text[i] == text[i + 1]:
        return text[:i] + text[i + 1 :]
    return text[:i] + text[i + 1] + text[i] + text[i + 2 :]


CA_OFFENCES = (
    "Drug trafficking",
    "Firearms smuggling",
    "Money laundering",
    "Human smuggling",
    "Terrorist financing",
    "Organised crime",
)
SO_OFFENCES = (
    "Sexual interference",
    "Child luring",
    "Possession of child sexual abuse material",
    "Sexual assault",
)
US_OFFENSES = (
    "Narcotics trafficking",
    "Weapons trafficking",
    "Wire fraud",
    "Material support",
    "Alien smuggling",
)
REMARKS = (
    "",
    "",
    "Frequent cross-border travel",
    "Uses multiple identities",
    "Known to travel with associates",
    "Subject of ongoing investigation",
    "Do not approach alone",
)
CONDITIONS = (
    "Not for onward disclosure without originator consent",
    "Law-enforcement use only; no judicial use without consent",
    "Contact originator before any action",
)
