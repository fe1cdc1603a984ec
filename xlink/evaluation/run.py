"""Evaluation through the real protocol path (docs/evaluation.md).

:func:`evaluate` plays both agencies of a :class:`~xlink.evaluation.datasets.Dataset`: each
side loads its records and derives its tokens with the linkage schema, the two
:class:`~xlink.protocol.PsiSession` s run the whole xlink-psi-v2 protocol, and the left side
decides matches from its :class:`~xlink.protocol.events.PsiResult` with
:func:`xlink.decide.decide`, exactly as ``xlink serve``/``xlink match`` do.

By default the two parties are two OS processes (the right side is forked) talking over a
socket pair through the transport's framing and session driver (:func:`xlink.transport.driver.
run_session`), so that each uses one core as two agencies would; ``parallel=False`` runs both
in this process through :func:`xlink.exchange.exchange_in_memory`.

Only the evaluator, which holds the ground truth, joins the two sides' outputs: a peer
reference is resolved through the right side's own result (``PsiResult.revealed``, the records
it revealed in reference order). Key weights and both thresholds are fitted on the development
split's candidate pairs (:mod:`xlink.evaluation.fitting`) unless ``fit="schema"``; the headline
figures are those of the held-out split.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xlink.crypto.rand import RandomSource, system_random
from xlink.errors import EvaluationError, ProtocolError, XlinkError
from xlink.evaluation.datasets import (
    Dataset,
    Side,
    Split,
    check_truth_ids,
    loaded_records,
)
from xlink.evaluation.fitting import MIN_DEV_PRECISION
from xlink.evaluation.judge import FITS, judge
from xlink.exchange import Party, exchange_in_memory
from xlink.linkage.keys import derive_token_set
from xlink.linkage.schema import LinkageSchema, schema_digest
from xlink.linkage.scoring import ONE_TO_ONE, fellegi_sunter_score
from xlink.linkage.tokens import TokenSet
from xlink.protocol.config import Mode, Role, SessionConfig
from xlink.protocol.events import PsiResult
from xlink.protocol.session import PsiSession

__all__ = ["EVAL_MOU_DIGEST", "EVAL_MOU_ID", "IDLE_TIMEOUT", "EvaluationError", "evaluate"]

#: MOU id both evaluation parties bind their sessions to.
EVAL_MOU_ID = "xlink-eval"
_EVAL_MOU_DST = b"xlink/v1/eval-mou"
#: Stand-in MOU digest for evaluation sessions: ``SHA-256(u32(len(D)) || D)``, D the label.
EVAL_MOU_DIGEST = hashlib.sha256(len(_EVAL_MOU_DST).to_bytes(4, "big") + _EVAL_MOU_DST).digest()
#: Seconds a party waits for its peer (which may still be loading and tokenising).
IDLE_TIMEOUT = 900.0
_PARTIES = ("eval-left", "eval-right")

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class _SideRun:
    """What one party reports: sizes and timings."""

    records: int
    tokens: int
    distinct: int  # distinct token values: what the PSI hashes and blinds
    load_s: float
    tokens_s: float
    psi_s: float
    loaded: frozenset[str]  # the ids of the records loaded (rejected rows are not)
    load: dict[str, Any] | None  # what a file's load said (None: a data set's own records)


def _distinct(tokens: TokenSet) -> int:
    import numpy as np

    return len(np.unique(np.frombuffer(tokens.values, dtype="V32")))


def _config(role: Role, schema: LinkageSchema) -> SessionConfig:
    me, peer = _PARTIES if role is Role.INITIATOR else reversed(_PARTIES)
    return SessionConfig(
        role=role,
        mode=Mode.PSI,
        party_id=me,
        peer_id=peer,
        mou_id=EVAL_MOU_ID,
        mou_digest=EVAL_MOU_DIGEST,
        schema_digest=schema_digest(schema),
    )


@dataclass(frozen=True, slots=True)
class _Tokens:
    """One side's tokens, how long loading and deriving them took, and what loading its file
    said."""

    tokens: TokenSet
    load_s: float
    tokens_s: float
    load: dict[str, Any] | None

    def run(self, psi_s: float) -> _SideRun:
        tokens = self.tokens
        return _SideRun(
            len(tokens.record_ids), len(tokens), _distinct(tokens), self.load_s, self.tokens_s,
            psi_s, frozenset(tokens.record_ids), self.load,
        )  # fmt: skip


def _tokens(
    side: Side, schema: LinkageSchema, clock: Callable[[], float], progress: Progress | None
) -> _Tokens:
    start = clock()
    records, load = loaded_records(side.load())
    loaded = clock()
    if progress:  # a file's side as xlink prepare says it: rejects, field errors, columns...
        said = load["summary"] if load else f"{len(records)} records loaded"
        progress(f"{side.label} ({loaded - start:.1f} s): {said}")
    tokens = derive_token_set(records, schema)
    done = clock()
    if progress:
        progress(f"{side.label}: {len(tokens)} tokens derived in {done - loaded:.1f} s")
    return _Tokens(tokens, loaded - start, done - loaded, load)


async def _over_socket(session: PsiSession, sock: socket.socket) -> PsiResult:
    from xlink.transport.driver import run_session
    from xlink.transport.stream import FramedConnection

    reader, writer = await asyncio.open_connection(sock=sock)
    conn = FramedConnection(reader, writer, write_timeout=IDLE_TIMEOUT)
    result = await run_session(session, conn, idle_timeout=IDLE_TIMEOUT)
    assert isinstance(result, PsiResult)
    return result


def _run_side(
    side: Side,
    role: Role,
    schema: LinkageSchema,
    sock: socket.socket,
    rng: RandomSource,
    clock: Callable[[], float],
    progress: Progress | None,
) -> tuple[PsiResult, _SideRun]:
    side_tokens = _tokens(side, schema, clock, progress)
    start = clock()
    session = PsiSession(_config(role, schema), side_tokens.tokens, rng=rng)
    result = asyncio.run(_over_socket(session, sock))
    return result, side_tokens.run(clock() - start)


def _right_party(
    side: Side,
    schema: LinkageSchema,
    sock: socket.socket,
    others: tuple[Any, ...],
    pipe: Any,
    clock: Callable[[], float],
    progress: Progress | None,
) -> None:  # pragma: no cover - runs in the forked process (its effects are tested)
    for inherited in others:  # the parent's ends: closed here so that its close reaches us
        inherited.close()
    try:
        result, run = _run_side(side, Role.RESPONDER, schema, sock, system_random, clock, progress)
        report: tuple[str, Any, Any] = ("ok", run, result.revealed)
    except XlinkError as exc:  # our own messages carry no record values
        report = ("error", f"{type(exc).__name__}: {exc}", None)
    except BaseException as exc:  # anything else may: only its type crosses
        report = ("bug", type(exc).__name__, None)
    try:
        pipe.send(report)
    except OSError:  # the evaluator stopped first (its own side failed): it says why
        pass
    finally:
        pipe.close()


def _outcome(receive: Any, child: Any) -> tuple[str, Any, Any]:
    """The child's report, or ``("bug", ...)`` if it exited without one."""
    try:
        return receive.recv()  # type: ignore[no-any-return]
    except EOFError:
        child.join()
        return ("bug", f"exited with code {child.exitcode} without a report", None)


def _two_processes(
    dataset: Dataset, schema: LinkageSchema, clock: Callable[[], float], progress: Progress | None
) -> tuple[PsiResult, tuple[str, ...], _SideRun, _SideRun]:
    ctx = multiprocessing.get_context("fork")
    left_sock, right_sock = socket.socketpair()
    receive, send = ctx.Pipe(duplex=False)
    child = ctx.Process(
        target=_right_party,
        args=(dataset.right, schema, right_sock, (left_sock, receive), send, clock, progress),
        daemon=True,
    )
    child.start()
    right_sock.close()
    send.close()
    report: tuple[str, Any, Any] | None = None
    try:
        try:
            result, left = _run_side(
                dataset.left, Role.INITIATOR, schema, left_sock, system_random, clock, progress
            )
        except ProtocolError:
            # The connection failed under us: the right party's own report says why.
            left_sock.close()
            if receive.poll(5):
                report = _outcome(receive, child)
            if report is not None and report[0] == "error":
                raise EvaluationError(f"right party failed: {report[1]}") from None
            if report is not None and report[0] == "bug":
                raise RuntimeError(f"right party failed: {report[1]}") from None
            raise
        report = _outcome(receive, child)
    finally:
        left_sock.close()
        receive.close()
        if child.is_alive():
            child.join(timeout=5)
        if child.is_alive():
            child.terminate()
        child.join()
    status, payload, revealed = report
    if status == "error":
        raise EvaluationError(f"right party failed: {payload}")
    if status != "ok":
        raise RuntimeError(f"right party failed: {payload}")
    return result, revealed, left, payload


def _one_process(
    dataset: Dataset,
    schema: LinkageSchema,
    rng: RandomSource,
    clock: Callable[[], float],
    progress: Progress | None,
) -> tuple[PsiResult, tuple[str, ...], _SideRun, _SideRun]:
    left, right = (_tokens(side, schema, clock, progress) for side in (dataset.left, dataset.right))
    start = clock()
    mine, theirs = exchange_in_memory(
        Party(_PARTIES[0], left.tokens, rng),
        Party(_PARTIES[1], right.tokens, rng),
        schema=schema,
        mou_id=EVAL_MOU_ID,
        mou_digest=EVAL_MOU_DIGEST,
    )
    psi_s = clock() - start
    assert isinstance(mine, PsiResult) and isinstance(theirs, PsiResult)
    return mine, theirs.revealed, left.run(psi_s), right.run(psi_s)


def evaluate(
    dataset: Dataset,
    schema: LinkageSchema,
    *,
    fit: str = "logistic",
    parallel: bool = True,
    precision_floor: float = MIN_DEV_PRECISION,
    pairs_path: Path | None = None,
    links: str = ONE_TO_ONE,
    rng: RandomSource = system_random,
    clock: Callable[[], float] = time.perf_counter,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Link ``dataset`` through a real PSI session and return JSON-ready figures.

    ``fit``: ``"logistic"`` (agreement and disagreement weights fitted jointly,
    :func:`~xlink.evaluation.fitting.fit_logistic_weights`) or ``"fellegi-sunter"`` (``m``/``u``
    per key, agreement only), then both thresholds chosen
    (:func:`~xlink.evaluation.fitting.choose_thresholds`), all on the development split;
    ``"schema"`` uses the schema's own weights and thresholds; ``"estimated"`` estimates them
    from the session's candidate pairs without labels (:mod:`xlink.linkage.estimate`, the
    estimate under ``estimate``). Fitted thresholds keep the development precision at least
    ``precision_floor``. ``pairs_path``: write every candidate pair there
    (:func:`~xlink.evaluation.pairs_file.write_pairs`). ``links``: the link rule matches are kept
    by (:data:`~xlink.linkage.link_rule.LINK_CHOICES`: a rule, or ``auto`` to choose one from
    the pairs). Raises ``ValueError`` for another value. ``parallel``: one process per party
    (needs ``fork``; ``rng`` is then the system's),
    else both in this one. ``progress`` receives one line per stage.

    The result has the held-out ``precision``, ``recall`` and ``f1`` at the top (with
    ``n_pairs``, ``true_links``, ``true_positives``), the same under ``dev`` and ``all``, the
    ``threshold``, the weighting (``weights``), each key's agreement weight in bits (``keys``)
    and disagreement weight (``disagreement_weights``, 0 for a key without one),
    ``tokens_per_record``, the PSI cost, and timings
    (``wall_s`` from the first record loaded to the last decision), and under
    ``fitted_schema`` the :class:`~xlink.linkage.schema.LinkageSchema` that decided (not JSON:
    pop it before printing).

    Raises :class:`~xlink.errors.EvaluationError` when the right party cannot load its records
    (its xlink error is in the message) or the development split cannot be fitted (no true or
    no false development pairs), the left party's own errors as they are, and
    ``RuntimeError`` if the right party's process fails for another reason (a bug: only the
    exception's type is reported, never its message, which could hold record values).
    """
    if fit not in FITS:
        raise ValueError(f"unknown fit {fit!r}")
    if parallel and "fork" not in multiprocessing.get_all_start_methods():
        parallel = False
    start = clock()
    if parallel:
        result, refs, left, right = _two_processes(dataset, schema, clock, progress)
    else:
        result, refs, left, right = _one_process(dataset, schema, rng, clock, progress)
    psi_s = max(left.psi_s, right.psi_s)
    if progress:
        progress(f"psi: {result.pair_count} candidate pairs in {psi_s:.1f} s")
    check_truth_ids(
        dataset.truth,
        (left.loaded, f"a record loaded from {dataset.left.label}"),
        (right.loaded, f"a record loaded from {dataset.right.label}"),
    )
    unloaded = sum(1 for a, b in dataset.truth if a not in left.loaded or b not in right.loaded)
    if unloaded and progress:
        naming = "true link names" if unloaded == 1 else "true links name"
        progress(
            f"{unloaded} {naming} a record that was not loaded (a rejected row, or an id the"
            " files do not hold): counted as rejected"
        )
    decide_start = clock()
    figures, schema, _ = judge(
        result,
        refs.__getitem__,
        dataset.truth,
        dataset.split_of,
        schema,
        fit=fit,
        right_records=right.records,
        dev_left=sum(1 for s in dataset.split.values() if s is Split.DEV),
        loaded=(left.loaded, right.loaded),
        precision_floor=precision_floor,
        pairs_path=pairs_path,
        links=links,
    )
    weights = schema.weights()
    end = clock()
    n_records = left.records + right.records
    tokens_per_record = (left.tokens + right.tokens) / max(n_records, 1)
    return {
        "dataset": dataset.name,
        "reported_on": "heldout",
        **figures,
        "split_rule": dataset.split_rule,
        "schema_id": schema.id,
        "schema_version": schema.version,
        "schema_digest": schema_digest(schema).hex(),
        "keys": {k.name: round(fellegi_sunter_score([k.name], weights), 4) for k in schema.keys},
        "disagreement_weights": {
            name: round(value, 4) for name, value in schema.disagreement_weights().items()
        },
        "records": {"left": left.records, "right": right.records},
        "loads": {"left": left.load, "right": right.load},
        "tokens": {"left": left.tokens, "right": right.tokens},
        "tokens_per_record": round(tokens_per_record, 3),
        "candidate_pairs": result.pair_count,
        "matched_tokens": result.matched_tokens,
        "psi": {
            "parties": "two processes" if parallel else "one process",
            "group_operations_per_record": round(3 * tokens_per_record, 2),
            "ms_per_record": round(1000 * psi_s / max(left.records, right.records, 1), 3),
            "distinct_tokens": {"left": left.distinct, "right": right.distinct},
        },
        "load_s": round(max(left.load_s, right.load_s), 3),
        "tokens_s": round(max(left.tokens_s, right.tokens_s), 3),
        "psi_s": round(psi_s, 3),
        "decide_s": round(end - decide_start, 3),
        "wall_s": round(end - start, 3),
        "fitted_schema": schema,
    }
