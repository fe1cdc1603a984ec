"""SYNTHETIC cross-border person data with ground truth, for evaluating private matching.

``xlink synth`` (docs/synth.md) writes two agencies' watchlist files, a Canadian one and a US one,
of ``n`` records each, plus the true (CA, US) pairs, a dev/held-out split by household, and a
manifest of what was done. Every person, name combination, date, address and document number is
invented; any resemblance to a real person is a coincidence of common names.

The data is meant to be demanding: names from a dozen cultures with Zipf-like frequencies,
Cyrillic written in several romanisation schemes (or in Cyrillic), nicknames, typos, compound and
married surnames, households and twins that share a surname, an address and a birth date, partial
and swapped dates, passports on some records only, people who moved, and duplicates within one
agency's list. Each record is corrupted independently, several corruptions at once.

``xlink synth --profile names-dob-sex`` (``profile="names-dob-sex"``) writes instead a census
(``ca.csv``, one record per person) and a vital-events registry (``us.csv``, 1 to 3 records per
person) holding only names, date of birth and sex, with stronger corruption: initials and
placeholder given names of infants, missing middle names, swapped, impossible and unparseable
dates, missing sex.

The sample bundled with xlink (``xlink/data``: four agency files, truth and manifest) is written
by the same generator, with a fixed seed: ``python -m xlink.synth.bundled --out DIR``
(:mod:`xlink.synth.bundled`, in the layouts of :mod:`xlink.synth.agencies`).
"""

from __future__ import annotations

from xlink.synth.generate import (
    DEFAULT_PROFILE,
    GENERATOR,
    GENERATOR_VERSION,
    PROFILES,
    SynthData,
    SynthRecord,
    build_synth,
    generate_synth,
)
from xlink.synth.writer import OUTPUT_FILES, read_split, read_truth

__all__ = [
    "DEFAULT_PROFILE",
    "GENERATOR",
    "GENERATOR_VERSION",
    "OUTPUT_FILES",
    "PROFILES",
    "SynthData",
    "SynthRecord",
    "build_synth",
    "generate_synth",
    "read_split",
    "read_truth",
]
