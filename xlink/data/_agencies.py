"""How each sample agency writes its file: column names, mappings, payload and source columns.

Part of the SYNTHETIC sample data generator (:mod:`xlink.data._generate`).
"""

from __future__ import annotations

import datetime
import random

from xlink.data import _names as names

CA_WL, CA_SO = "ca_watchlist.csv", "ca_sex_offenders.csv"
US_WL, US_TR = "us_watchlist.csv", "us_travellers.csv"
CA_COMMON_COLUMNS = {
    "Date of Birth": "birth_date",
    "Sex": "sex",
    "Citizenship": "nationalities",
    "Place of Birth": "birth_place",
    "Document Type": "doc_type",
    "Passport No": "doc_number",
    "Passport Country": "doc_country",
    "Passport Expiry": "doc_expiry",
    "Street Address": "address",
    "City": "locality",
    "Province": "region",
    "Postal Code": "postcode",
    "Country": "country",
    "Source Ref": "source_id",
    "Grading": "grading",
    "Handling Code": "handling_code",
    "Handling Conditions": "handling_conditions",
}
PREFIXES = {CA_WL: "CAWL", CA_SO: "CASO", US_WL: "USWL", US_TR: "USTR"}
MAPPINGS: dict[str, dict[str, object]] = {
    CA_WL: {
        "date_order": "DMY",
        "columns": {
            "Subject ID": "record_id",
            "Surname": "family_name",
            "Given Names": "given_name",
            "Category": "category",
            "Also Known As": "aliases",
            **CA_COMMON_COLUMNS,
        },
    },
    CA_SO: {
        "date_order": "DMY",
        "category": "sex_offender",
        "columns": {
            "Registry No": "record_id",
            "Family Name": "family_name",
            "Given Name": "given_name",
            "Middle Name": "middle_name",
            **CA_COMMON_COLUMNS,
        },
    },
    US_WL: {
        "date_order": "MDY",
        "columns": {
            "uid": "record_id",
            "list_type": "category",
            "last_name": "family_name",
            "first_name": "given_name",
            "aka": "aliases",
            "dob": "birth_date",
            "gender": "sex",
            "citizenship": "nationalities",
            "doc_num": "doc_number",
            "doc_exp": "doc_expiry",
            "street": "address",
            "city": "locality",
            "state": "region",
            "zip": "postcode",
            "src": "source_id",
            "src_grade": "grading",
            "handling": "handling_code",
            "handling_caveat": "handling_conditions",
        },
    },
    US_TR: {
        "date_order": "MDY",
        "category": "traveller",
        "columns": {
            "pax_id": "record_id",
            "surname": "family_name",
            "given_names": "given_name",
            "dob": "birth_date",
            "nationality": "nationalities",
            "passport_number": "doc_number",
            "passport_issuer": "doc_country",
            "passport_expiry": "doc_expiry",
            "us_address": "address",
            "us_city": "locality",
            "us_state": "region",
            "us_zip": "postcode",
            "dest_country": "country",
            "source": "source_id",
        },
    },
}
NAME_COLUMNS = {
    CA_WL: ("Surname", "Given Names"),
    CA_SO: ("Family Name", "Given Name", "Middle Name"),
    US_WL: ("last_name", "first_name", "middle_name"),
    US_TR: ("surname", "given_names"),
}


def payload(rng: random.Random, file: str) -> dict[str, str]:
    if file == CA_WL:
        return {
            "Offence": rng.choice(names.CA_OFFENCES),
            "Risk Level": rng.choice(("Low", "Medium", "High")),
            "Remarks": rng.choice(names.REMARKS),
        }
    if file == CA_SO:
        return {
            "Offence": rng.choice(names.SO_OFFENCES),
            "Risk Level": rng.choice(("High", "Very High")),
            "Remarks": rng.choice(names.REMARKS),
        }
    if file == US_WL:
        return {
            "offense": rng.choice(names.US_OFFENSES),
            "threat_level": rng.choice(("LOW", "ELEVATED", "HIGH")),
            "notes": rng.choice(names.REMARKS),
        }
    arrival = datetime.date(2025, 3, 1) + datetime.timedelta(days=rng.randrange(60))
    return {
        "flight": rng.choice(("AC", "WS", "UA", "DL", "AA")) + str(rng.randrange(100, 9000)),
        "arrival_date": f"{arrival.month:02d}/{arrival.day:02d}/{arrival.year}",
        "port_of_entry": rng.choice(("Blaine WA", "Detroit MI", "Buffalo NY", "JFK", "ORD")),
    }


def source(rng: random.Random, file: str) -> tuple[str, str, str, str]:
    """Source id, grading, handling code and conditions."""
    ca = file.startswith("ca_")
    ref = f"{'RCMP' if ca else 'FBI'}-SRC-{rng.randrange(1000, 9999)}"
    grading = (
        f"{rng.choice('1122233')}{rng.choice('AABBCDE')}"
        if ca
        else f"{rng.choice('ABBCCDEF')}{rng.choice('1223346')}"
    )
    if rng.random() < 0.3:
        return ref, grading, "C", rng.choice(names.CONDITIONS)
    return ref, grading, "P", ""
