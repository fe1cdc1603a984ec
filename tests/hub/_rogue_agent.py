"""A rogue agency in a process of its own (tests/hub/test_hub_faults.py): CA-CBSA's operator,
holding CA-CBSA's keys, tries to pass for CA-RCMP at the hub — a control connection, a session
for a job, a query — again and again while the real agencies run their round. Exit 0 when the
hub refused every try as ``bad-signature``, 1 otherwise.

Usage: ``python _rogue_agent.py PORT MOU CBSA_KEYS ENV_VAR TRIES``
"""

from __future__ import annotations

import asyncio
import os
import sys
from datetime import UTC, datetime

from xlink.crypto.keyfiles import AgencyKeys
from xlink.crypto.rand import system_random
from xlink.error_codes import HubReason
from xlink.errors import HubError, PeerRefused
from xlink.hub import HubAddress
from xlink.hub.client import open_control, open_hub
from xlink.hub.wire import Purpose
from xlink.policy.multilateral import accept_multilateral, load_multilateral


async def main(port: int, mou_path: str, keys_dir: str, env_var: str, tries: int) -> int:
    mou = accept_multilateral(
        load_multilateral(mou_path), local_agency="CA-CBSA", today=datetime.now(UTC).date()
    )
    key = AgencyKeys.load(keys_dir, os.environ[env_var].encode()).signing_key
    address = HubAddress("127.0.0.1", port, mou.hub)
    attempts = [
        {"purpose": Purpose.CONTROL},
        {"purpose": Purpose.SESSION, "job": bytes(16)},
        {"purpose": Purpose.QUERY, "peer": "US-DHS"},
    ]
    refused, loop = 0, asyncio.get_running_loop()
    deadline = loop.time() + 60
    while refused < tries and loop.time() < deadline:
        kw = attempts[refused % len(attempts)]
        try:
            if kw["purpose"] is Purpose.CONTROL:
                link = await open_control(
                    address,
                    agency="CA-RCMP",
                    signing_key=key,
                    clock=lambda: datetime.now(UTC),
                    rng=system_random,
                )
                link.close()
                print("the hub welcomed a rogue control connection", file=sys.stderr)
                return 1
            sock = await open_hub(
                address,
                agency="CA-RCMP",
                signing_key=key,
                clock=lambda: datetime.now(UTC),
                rng=system_random,
                **kw,
            )  # type: ignore[arg-type]
        except PeerRefused:  # the hub is not listening yet: try again
            await asyncio.sleep(0.2)
            continue
        except HubError as exc:
            if exc.reason is not HubReason.BAD_SIGNATURE:
                print(f"refused, but as {exc.reason.value}", file=sys.stderr)
                return 1
            refused += 1
        else:
            sock.close()
            print(f"the hub welcomed a rogue {kw['purpose'].value} connection", file=sys.stderr)
            return 1
        await asyncio.sleep(0.2)
    if refused < tries:
        print(f"only {refused} of {tries} tries reached the hub", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    port, mou_path, keys_dir, env_var, tries = sys.argv[1:6]
    sys.exit(asyncio.run(main(int(port), mou_path, keys_dir, env_var, int(tries))))
