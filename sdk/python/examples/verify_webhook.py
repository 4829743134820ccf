"""Receive Payloom webhooks and verify them (Standard Webhooks signatures).

    PAYLOOM_WEBHOOK_SECRET=whsec_… python verify_webhook.py --port 4242
    # or let the example register itself and ask Payloom for a test event:
    PAYLOOM_API_KEY=sk_test_… python verify_webhook.py --create-endpoint --send-test --once

Each request's RAW body and headers go to ``payloom.Webhook.construct_event``: a bad or
missing signature, or a timestamp more than 5 minutes off, is answered 400 and ignored. Events
are de-duplicated by ``webhook-id`` (deliveries are at least once: a retry or a replay carries
the same id). Answer 2xx fast and do the work afterwards; anything else is retried.

Plain http is accepted by Payloom only for loopback receivers in test mode (the local stack);
real endpoints are https. The last line printed for each event is
``verified <type> <event id>``.
"""
from __future__ import annotations

import argparse
import http.server
import os
import sys
import threading

import payloom

_print_lock = threading.Lock()


def say(message: str) -> None:
    """One whole line at a time (the server's threads print too)."""
    with _print_lock:
        print(message, flush=True)


class Receiver:
    """Verification and de-duplication, independent of the HTTP server."""

    def __init__(self, secrets):
        self.secrets = list(secrets)           # old and new while a secret is being rotated
        self.seen: set = set()
        self.events: list = []
        self.lock = threading.Lock()
        self.got_one = threading.Event()

    def handle(self, body: bytes, headers) -> "tuple[int, str]":
        try:
            event = payloom.Webhook.construct_event(body, headers, self.secrets)
        except payloom.SignatureVerificationError as e:
            return 400, f"rejected: {e.message}"
        msg_id = {k.lower(): v for k, v in headers.items()}["webhook-id"]
        with self.lock:
            if msg_id in self.seen:
                return 200, f"duplicate {msg_id}: already handled"
            self.seen.add(msg_id)
            self.events.append(event)
        self.got_one.set()
        return 200, f"verified {event.type} {event.id}"


def serve(receiver: Receiver, port: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            status, message = receiver.handle(body, dict(self.headers))
            say(message)
            data = message.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=4242, help="0: any free port")
    parser.add_argument("--secret", action="append", default=[],
                        help="whsec_… (repeat while rotating); default $PAYLOOM_WEBHOOK_SECRET")
    parser.add_argument("--create-endpoint", action="store_true",
                        help="register this receiver with PAYLOOM_API_KEY (and delete it at exit)")
    parser.add_argument("--send-test", action="store_true",
                        help="ask Payloom to deliver a webhook_endpoint.test event")
    parser.add_argument("--once", action="store_true", help="exit after the first verified event")
    parser.add_argument("--timeout", type=float, default=120.0, help="with --once: seconds to wait")
    args = parser.parse_args(argv)

    secrets = args.secret or [s for s in [os.environ.get("PAYLOOM_WEBHOOK_SECRET")] if s]
    client = endpoint = None
    if args.create_endpoint or args.send_test:
        client = payloom.Client(os.environ["PAYLOOM_API_KEY"],
                                api_base=os.environ.get("PAYLOOM_API_BASE", payloom.client.DEFAULT_API_BASE))
    receiver = Receiver(secrets)
    server = serve(receiver, args.port)
    url = f"http://127.0.0.1:{server.server_address[1]}/webhooks"
    say(f"listening on {url}")
    try:
        if args.create_endpoint:
            endpoint = client.WebhookEndpoint.create(url=url, enabled_events=["*"],
                                                     description="SDK verify_webhook example")
            receiver.secrets = [endpoint.secret]   # shown once: a real receiver stores it now
            say(f"endpoint {endpoint.id} created; its secret is only shown in that answer")
        if not receiver.secrets:
            print("no secret: pass --secret, set PAYLOOM_WEBHOOK_SECRET or use --create-endpoint",
                  file=sys.stderr)
            return 2
        if args.send_test:
            target = endpoint.id if endpoint else os.environ["PAYLOOM_WEBHOOK_ENDPOINT"]
            delivery = client.WebhookEndpoint.send_test(target)
            say(f"test event {delivery.event} queued")
        if args.once:
            if not receiver.got_one.wait(args.timeout):
                print("no verified webhook arrived in time", file=sys.stderr)
                return 1
            return 0
        threading.Event().wait()                   # serve until interrupted
    except KeyboardInterrupt:
        return 0
    finally:
        server.shutdown()
        if endpoint is not None:
            endpoint.delete()
    return 0


if __name__ == "__main__":
    sys.exit(main())
