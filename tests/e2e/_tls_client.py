"""A bare TLS 1.3 client, run as its own process by tests/e2e/test_two_process_refusals.py.

    python _tls_client.py PORT SERVER_CERT_PEM [IDENTITY_PEM]

Connects to 127.0.0.1:PORT trusting only SERVER_CERT_PEM (no hostname check), presenting the
certificate and key of IDENTITY_PEM if given and no certificate otherwise, then reads once.
Prints one JSON line: whether the handshake completed, the TLS version, and how the first read
ended. Exits 0 whatever the server decided; the server's verdict is what the tests check.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys

TIMEOUT = 10.0


def main(argv: list[str]) -> int:
    port, server_cert = int(argv[0]), argv[1]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.load_verify_locations(cafile=server_cert)
    if len(argv) > 2:
        ctx.load_cert_chain(argv[2])
    result: dict[str, object] = {"handshake": False, "version": None, "read": None}
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        try:
            with ctx.wrap_socket(raw) as tls:
                result["handshake"] = True
                result["version"] = tls.version()
                # TLS 1.3: the server judges our certificate after our handshake is done, so
                # its refusal (an alert, a reset or a close) shows up on the first read.
                data = tls.recv(1)
                result["read"] = "eof" if data == b"" else "data"
        except (ssl.SSLError, OSError) as exc:
            result["read"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
