#!/usr/bin/env python3
"""Minimal webhook receiver (Python 3.8+, standard library only).

    WEBHOOK_SECRET=whsec_... PORT=8000 python3 receiver.py

Verifies the Standard Webhooks signature, prints each verified event as one
JSON line on stdout, answers 200 (or 401 on a bad signature).
"""
import base64
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

SECRET = os.environ["WEBHOOK_SECRET"]
PORT = int(os.environ.get("PORT", "8000"))
TOLERANCE_S = 5 * 60  # reject stale/replayed requests

KEY = base64.b64decode(SECRET[len("whsec_"):] if SECRET.startswith("whsec_") else SECRET)


def verify(msg_id, timestamp, signature_header, body):
    try:
        ts = int(timestamp)
    except (TypeError, ValueError):
        return False
    if abs(time.time() - ts) > TOLERANCE_S:
        return False
    signed = msg_id.encode() + b"." + str(ts).encode() + b"." + body
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    ok = False
    # Several signatures are sent while a secret is being rotated; any match is enough.
    for part in (signature_header or "").split(" "):
        version, _, sig = part.partition(",")
        if version == "v1" and hmac.compare_digest(sig, expected):
            ok = True
    return ok


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)  # verify the raw bytes, before any JSON parsing
        if not verify(self.headers.get("webhook-id") or "",
                      self.headers.get("webhook-timestamp"),
                      self.headers.get("webhook-signature"), body):
            self.send_response(401)
            self.end_headers()
            return
        event = json.loads(body)
        # Deduplicate on webhook-id (== event["id"]) in real code: retries resend it.
        line = json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n"
        sys.stdout.buffer.write(line.encode("utf-8"))  # UTF-8 whatever the locale
        sys.stdout.flush()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args):  # keep stdout for events only
        pass


if __name__ == "__main__":
    HTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
