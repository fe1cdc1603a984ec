"""The linkage schema: a declarative, versioned list of match-key recipes (DESIGN §2 step 2).

Both parties of an MOU use the same schema and compare :func:`schema_digest` in the handshake.
A schema is data (JSON or TOML, same content, same digest); :func:`validate_schema` checks all of
it and raises one :class:`~xlink.errors.SchemaError` listing every problem. The format is
documented field by field in ``docs/records-and-linkage.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from xlink.documents import (
    DocumentError,
    document_format,
    finite_number,
    parse_document,
    read_document,
)
from xlink.errors import SchemaError
from xlink.identifiers import KEY_NAME, KEY_NAME_RULE, SCHEMA_ID, SCHEMA_ID_RULE
from xlink.linkage._schema_evidence import (
    EvidenceMember,
    check_evidence,
    evidence_table,
    key_evidence_of,
)
from xlink.linkage._schema_forms import (
    SCHEMA_DIGEST_DST,
    schema_digest,
    schema_to_canonical,
    schema_to_document,
)
from xlink.linkage.fields import (
    DATE_ONLY_TRANSFORMS,
    IDENTIFYING_GROUPS,
    PHONETIC_TRANSFORMS,
    EvidenceFields,
    Field,
    FieldGroup,
    Transform,
    TransformKind,
)
from xlink.linkage.scoring import DEFAULT_KEY_WEIGHT, KeyWeight

__all__ = [
    "DEFAULT_SCHEMA_RESOURCE",
    "SCHEMA_DIGEST_DST",
    "Field",
    "FieldGroup",
    "KeyRecipe",
    "LinkageSchema",
    "Transform",
    "TransformKind",
    "load_default_schema",
    "load_schema",
    "parse_schema",
    "schema_digest",
    "schema_to_canonical",
    "schema_to_document",
    "validate_schema",
]

#: Package resource holding the default schema.
DEFAULT_SCHEMA_RESOURCE = "data/schemas/default-v7.json"

_MAX_KEYS = 255  # TokenSet stores the key index in one byte
_MAX_VERSION = 2**32 - 1  # token_digest encodes versions in four bytes


@dataclass(frozen=True, slots=True)
class KeyRecipe:
    """One match key: the fields it combines and how each is transformed.

    ``transforms[i]`` is the chain applied to ``fields[i]`` (empty = identity). ``m``/``u`` are
    the Fellegi–Sunter probabilities (both or neither); ``weight`` is instead a score in bits
    given directly (fitted jointly with the other keys' by logistic regression, so it may be
    negative: see docs/evaluation.md). A key has ``m``/``u``, a ``weight`` or neither.
    ``disagreement_weight`` (bits, usually negative) is added instead when the key *disagrees*:
    both records have a token for it and none is shared (the PSI reveals which keys each record
    has, spec xlink-psi-v2 §6.7); it may go with ``m``/``u``, with ``weight`` or alone, and
    without it a disagreement adds nothing. ``use_variants``: transliteration,
    ambiguous-date and name-order variants each give a token; otherwise only the primary reading
    does. ``unordered``: the parts are sorted before hashing, so ``(A, B)`` and ``(B, A)`` agree.
    """

    name: str
    version: int
    fields: tuple[Field, ...]
    transforms: tuple[tuple[Transform, ...], ...]
    m: float | None = None
    u: float | None = None
    use_variants: bool = True
    unordered: bool = False
    description: str = ""
    weight: float | None = None
    disagreement_weight: float | None = None

    @property
    def score_weight(self) -> KeyWeight | float:
        """What an agreement on this key adds to a pair's score: its :class:`KeyWeight` (from
        ``m``/``u``), its ``weight``, or :data:`DEFAULT_KEY_WEIGHT` without either."""
        if self.weight is not None:
            return self.weight
        if self.m is None or self.u is None:
            return DEFAULT_KEY_WEIGHT
        return KeyWeight(self.name, self.m, self.u)


@dataclass(frozen=True, slots=True)
class LinkageSchema:
    """A validated linkage schema. Build it with :func:`validate_schema`."""

    id: str
    version: int
    keys: tuple[KeyRecipe, ...]
    threshold: float | None = None
    description: str = ""
    certain_threshold: float | None = None
    placeholder_names: bool = False
    """Whether a placeholder given name (``Baby``, ``Unknown``...; ``xlink.linkage.keys.
    PLACEHOLDER_GIVEN_NAMES``) counts as no given name. Off unless a schema says so, so that
    the tokens of a schema written before the rule do not change."""
    full_birth_dates: bool = False
    """Whether the ``birth_date`` field holds full dates only: a partial date (``1980``,
    ``1980-03``) then gives no ``birth_date`` value, so a key on it is missing for that record
    (no evidence) rather than disagreeing with a full date, and two year-only dates do not
    agree on it as if their days were known; ``birth_year`` and ``birth_year_month`` compare
    what a partial date says. Off unless a schema says so, as ``placeholder_names``."""
    min_evidence_groups: int | None = None
    """How many kinds of evidence (a name, a date of birth, an address, a document number:
    :func:`~xlink.linkage.fields.evidence_of`) the agreeing keys of a pair must hold for the
    pair to be decided (:meth:`has_evidence`): with 2, a name alone, or a name with a guessed
    birth year, never decides a match, whatever a partner declares missing. ``None`` (a
    schema written before the rule): no such condition."""
    evidence: EvidenceMember | None = None
    """Which fields hold which kind of evidence for ``min_evidence_groups`` (schema member
    ``evidence``: ``{"name": [fields], "birth": [...], "address": [...], "document": [...]}``),
    kinds and fields in name order; a kind left out holds nothing. ``None``: the table of
    version 6, :data:`~xlink.linkage.fields.V6_EVIDENCE_FIELDS` (from version 7 the default
    schema leaves the city out: a partner guesses it in a few tries)."""

    def evidence_fields(self) -> EvidenceFields:
        """Which fields hold which kind of evidence under this schema: its ``evidence`` member,
        or :data:`~xlink.linkage.fields.V6_EVIDENCE_FIELDS` without one."""
        return evidence_table(self.evidence)

    def key_evidence(self) -> dict[str, frozenset[FieldGroup]]:
        """Key name → the kinds of evidence agreeing on it shows
        (:func:`~xlink.linkage.fields.evidence_of` with :meth:`evidence_fields`)."""
        return dict(key_evidence_of(self.keys, self.evidence))

    def evidence_groups(self, agreeing: Iterable[str]) -> int:
        """How many kinds of evidence the keys ``agreeing`` hold between them (``KeyError``
        for a key this schema does not name)."""
        groups = key_evidence_of(self.keys, self.evidence)
        drawn: set[FieldGroup] = set()
        for name in agreeing:
            drawn |= groups[name]
        return len(drawn)

    def has_evidence(self, agreeing: Iterable[str]) -> bool:
        """Whether a pair agreeing on the keys ``agreeing`` may be decided: its agreeing keys
        hold at least ``min_evidence_groups`` kinds of evidence (always, without the member).
        What a pair disagrees on or misses does not count: a partner declares it."""
        if self.min_evidence_groups is None:
            return True
        return self.evidence_groups(agreeing) >= self.min_evidence_groups

    @property
    def key_names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.keys)

    def decision_threshold(self, threshold: float | None = None) -> float:
        """The threshold fixed weights are held to: ``threshold``, else the schema's, else
        one agreeing key (:data:`~xlink.linkage.scoring.DEFAULT_KEY_WEIGHT`)."""
        if threshold is not None:
            return threshold
        return self.threshold if self.threshold is not None else DEFAULT_KEY_WEIGHT

    def weights(self) -> dict[str, KeyWeight | float]:
        """Key name → weight, for :func:`~xlink.linkage.scoring.fellegi_sunter_score`."""
        return {k.name: k.score_weight for k in self.keys}

    def disagreement_weights(self) -> dict[str, float]:
        """Key name → what a disagreement on the key adds to a pair's score (its
        ``disagreement_weight``, 0.0 without one), for the ``disagreement`` argument of
        :func:`~xlink.linkage.scoring.fellegi_sunter_score`."""
        return {
            k.name: 0.0 if k.disagreement_weight is None else k.disagreement_weight
            for k in self.keys
        }


_SCHEMA_MEMBERS = frozenset(
    {
        "id",
        "version",
        "description",
        "threshold",
        "certain_threshold",
        "placeholder_names",
        "full_birth_dates",
        "min_evidence_groups",
        "evidence",
        "keys",
    }
)
_MAX_WEIGHT = 64.0  # bits: beyond any evidence a key can carry
_KEY_MEMBERS = frozenset(
    {"name", "version", "description", "fields", "transforms", "m", "u", "weight",
     "disagreement_weight", "use_variants", "unordered"}
)  # fmt: skip


def _check_version(value: object, where: str, errors: list[str]) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= _MAX_VERSION:
        return value
    errors.append(f"{where}: must be an integer 1..{_MAX_VERSION}")
    return 1


def _check_recipe(raw: object, where: str, errors: list[str]) -> KeyRecipe | None:
    if not isinstance(raw, Mapping):
        errors.append(f"{where}: must be a table/object")
        return None
    for member in sorted(set(raw) - _KEY_MEMBERS, key=str):
        errors.append(f"{where}: unknown member {member!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not KEY_NAME.fullmatch(name):
        errors.append(f"{where}.name: required, {KEY_NAME_RULE.description}")
        name = ""
    version = _check_version(raw.get("version"), f"{where}.version", errors)
    fields: list[Field] = []
    raw_fields = raw.get("fields")
    if not isinstance(raw_fields, list) or not raw_fields:
        errors.append(f"{where}.fields: required, a non-empty list")
        raw_fields = []
    for i, f in enumerate(raw_fields):
        try:
            field = Field(f)
        except ValueError:
            errors.append(f"{where}.fields[{i}]: unknown field {f!r}")
            continue
        if field in fields:
            errors.append(f"{where}.fields[{i}]: field {f!r} listed twice")
        fields.append(field)
    raw_transforms = raw.get("transforms", {})
    if not isinstance(raw_transforms, Mapping):
        errors.append(f"{where}.transforms: must map field names to lists of transforms")
        raw_transforms = {}
    chains: dict[Field, tuple[Transform, ...]] = {}
    for fname, chain in raw_transforms.items():
        tw = f"{where}.transforms.{fname}"
        field_or_none = next((f for f in fields if f.value == fname), None)
        if field_or_none is None:
            errors.append(f"{tw}: not one of this key's fields")
        if isinstance(chain, str):
            chain = [chain]
        if not isinstance(chain, list):
            errors.append(f"{tw}: must be a transform name or a list of them")
            continue
        steps: list[Transform] = []
        for spec in chain:
            try:
                step = Transform.parse(spec) if isinstance(spec, str) else None
            except ValueError as exc:
                errors.append(f"{tw}: {exc}")
                continue
            if step is None:
                errors.append(f"{tw}: a transform must be a string")
                continue
            if field_or_none is not None:
                if step.kind in PHONETIC_TRANSFORMS and not field_or_none.alphabetic:
                    errors.append(f"{tw}: {step} applies only to name-like fields")
                if step.kind in DATE_ONLY_TRANSFORMS and field_or_none is not Field.BIRTH_DATE:
                    errors.append(f"{tw}: {step} applies only to birth_date")
            if step.kind is not TransformKind.IDENTITY:
                steps.append(step)
        if field_or_none is not None:
            chains[field_or_none] = tuple(steps)
    fuzzy = [f.value for f, chain in chains.items() for t in chain if t.expanding]
    if len(fuzzy) > 1:
        errors.append(
            f"{where}.transforms: at most one fuzzy transform (deletions, minhash) per key; "
            f"here on {', '.join(fuzzy)}"
        )
    raw_m, raw_u = raw.get("m"), raw.get("u")
    if (raw_m is None) != (raw_u is None):
        errors.append(f"{where}: m and u go together (both or neither)")
    m, u = finite_number(raw_m), finite_number(raw_u)
    for label, raw_p, p in (("m", raw_m, m), ("u", raw_u, u)):
        if raw_p is not None and (p is None or not 0.0 < p < 1.0):
            errors.append(f"{where}.{label}: must be a probability strictly between 0 and 1")
    if m is not None and u is not None and m <= u:
        errors.append(f"{where}: m must be greater than u (agreement must be evidence)")
    raw_weight = raw.get("weight")
    weight = finite_number(raw_weight)
    if raw_weight is not None:
        if weight is None or abs(weight) > _MAX_WEIGHT:
            errors.append(f"{where}.weight: must be a number between -64 and 64 (bits)")
            weight = None
        if raw_m is not None or raw_u is not None:
            errors.append(f"{where}: give m and u, or weight, not both")
    raw_disagreement = raw.get("disagreement_weight")
    disagreement = finite_number(raw_disagreement)
    if raw_disagreement is not None and (disagreement is None or abs(disagreement) > _MAX_WEIGHT):
        errors.append(f"{where}.disagreement_weight: must be a number between -64 and 64 (bits)")
        disagreement = None
    flags: dict[str, bool] = {}
    for flag, default in (("use_variants", True), ("unordered", False)):
        value = raw.get(flag, default)
        if not isinstance(value, bool):
            errors.append(f"{where}.{flag}: must be true or false")
            value = default
        flags[flag] = value
    if flags["unordered"] and len(fields) < 2:
        errors.append(f"{where}.unordered: needs at least two fields")
    description = raw.get("description", "")
    if not isinstance(description, str):
        errors.append(f"{where}.description: must be a string")
        description = ""
    return KeyRecipe(
        name=name,
        version=version,
        fields=tuple(fields),
        transforms=tuple(chains.get(f, ()) for f in fields),
        m=m if raw_u is not None else None,
        u=u if raw_m is not None else None,
        use_variants=flags["use_variants"],
        unordered=flags["unordered"],
        description=description,
        weight=weight,
        disagreement_weight=disagreement,
    )


def validate_schema(data: object) -> LinkageSchema:
    """Check a parsed schema document and build the :class:`LinkageSchema`.

    Collects every problem (unknown member, field or transform, transform not applicable to its
    field, duplicate key name, missing or malformed id, bad version, ``m``/``u`` outside (0, 1)
    or ``m <= u``, ``weight`` together with ``m``/``u``, a ``weight`` or ``disagreement_weight``
    that is not a number in [-64, 64], no keys, more than 255 keys, bad threshold ...) and raises
    one :class:`~xlink.errors.SchemaError` listing them all, each prefixed by its location
    (``keys[2].transforms.family``).
    """
    errors: list[str] = []
    if not isinstance(data, Mapping):
        raise SchemaError(["schema: must be a table/object"])
    for member in sorted(set(data) - _SCHEMA_MEMBERS, key=str):
        errors.append(f"schema: unknown member {member!r}")
    schema_id = data.get("id")
    if not isinstance(schema_id, str) or not SCHEMA_ID.fullmatch(schema_id):
        errors.append(f"id: required, {SCHEMA_ID_RULE.description}")
        schema_id = ""
    version = _check_version(data.get("version"), "version", errors)
    raw_threshold = data.get("threshold")
    threshold = finite_number(raw_threshold)
    if raw_threshold is not None and threshold is None:
        errors.append("threshold: must be a finite number")
    raw_certain = data.get("certain_threshold")
    certain = finite_number(raw_certain)
    if raw_certain is not None and certain is None:
        errors.append("certain_threshold: must be a finite number")
    if certain is not None and (threshold is None or certain < threshold):
        errors.append("certain_threshold: needs a threshold, and must not be below it")
    placeholder_names = data.get("placeholder_names", False)
    if not isinstance(placeholder_names, bool):
        errors.append("placeholder_names: must be true or false")
        placeholder_names = False
    full_birth_dates = data.get("full_birth_dates", False)
    if not isinstance(full_birth_dates, bool):
        errors.append("full_birth_dates: must be true or false")
        full_birth_dates = False
    min_groups = data.get("min_evidence_groups")
    if min_groups is not None and not (
        isinstance(min_groups, int)
        and not isinstance(min_groups, bool)
        and 1 <= min_groups <= len(IDENTIFYING_GROUPS)
    ):
        errors.append(f"min_evidence_groups: must be an integer 1..{len(IDENTIFYING_GROUPS)}")
        min_groups = None
    evidence = check_evidence(data.get("evidence"), min_groups is not None, errors)
    if evidence is not None and min_groups is not None and len(evidence) < min_groups:
        errors.append(
            f"evidence: {len(evidence)} kinds listed, fewer than min_evidence_groups "
            f"({min_groups}): no pair could be decided"
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        errors.append("description: must be a string")
        description = ""
    raw_keys = data.get("keys")
    if not isinstance(raw_keys, list) or not raw_keys:
        errors.append("keys: required, a non-empty list of key recipes")
        raw_keys = []
    if len(raw_keys) > _MAX_KEYS:
        errors.append(f"keys: at most {_MAX_KEYS} keys")
    recipes: list[KeyRecipe] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(raw_keys):
        recipe = _check_recipe(raw, f"keys[{i}]", errors)
        if recipe is None:
            continue
        if recipe.name and recipe.name in seen:
            errors.append(f"keys[{i}].name: duplicate key name (also keys[{seen[recipe.name]}])")
        seen.setdefault(recipe.name, i)
        recipes.append(recipe)
    if errors:
        raise SchemaError(errors)
    return LinkageSchema(
        id=schema_id,
        version=version,
        keys=tuple(recipes),
        threshold=threshold,
        description=description,
        certain_threshold=certain,
        placeholder_names=placeholder_names,
        full_birth_dates=full_birth_dates,
        min_evidence_groups=min_groups,
        evidence=evidence,
    )


def parse_schema(text: str | bytes, fmt: str) -> LinkageSchema:
    """Parse ``text`` as ``fmt`` (``"json"`` or ``"toml"``) and validate it.

    Raises :class:`~xlink.errors.SchemaError` for an unknown format, a document that does not
    parse (:func:`xlink.documents.parse_document`) or any invalid content.
    """
    try:
        data = parse_document(text, fmt)
    except DocumentError as exc:
        raise SchemaError([exc.reason]) from None
    return validate_schema(data)


def load_schema(path: str | Path) -> LinkageSchema:
    """Read a ``.json`` or ``.toml`` schema file. Raises ``OSError`` if unreadable and
    :class:`~xlink.errors.SchemaError` for another suffix or an invalid document."""
    try:
        fmt = document_format(path)
    except DocumentError as exc:
        raise SchemaError([exc.reason]) from None
    return parse_schema(read_document(path), fmt)


def load_default_schema() -> LinkageSchema:
    """The schema shipped as package data (``xlink/data/schemas/default-v7.json``; versions 3
    to 6, ``default-v3.json`` to ``default-v6.json``, are shipped beside it for MOUs signed
    over them)."""
    text = resources.files("xlink").joinpath(DEFAULT_SCHEMA_RESOURCE).read_text("utf-8")
    return parse_schema(text, "json")
