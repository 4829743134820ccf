"""gunicorn's thread worker for the local gateway, answering its own refusals in the envelope.

gunicorn refuses an over-long request line (414), over-large headers (431) and malformed
requests (400) before any WSGI app runs, with an HTML page. Clients of Payloom always get
``{"error": {...}}``, so this worker renders those refusals as JSON (reason only: the request
text is never echoed back).
"""
from __future__ import annotations

import json

from gunicorn import util
from gunicorn.workers.gthread import ThreadWorker

from shared.platform.errors import http_error_envelope


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    body = json.dumps(http_error_envelope(status_int, reason), separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, head.encode("latin-1") + body)


class EnvelopeThreadWorker(ThreadWorker):
    def init_process(self):
        util.write_error = write_json_error  # gunicorn's base worker calls util.write_error
        super().init_process()
