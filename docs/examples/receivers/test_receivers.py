#!/usr/bin/env python3
"""Smoke-test the example receivers: start each one, POST signed requests, check
stdout and status codes. Usage: python3 test_receivers.py [py] [js] [php]
(php needs the php CLI). Exits non-zero on failure."""
import base64
import hashlib
import hmac
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "webhook-test-vectors.json")
SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
OLD = "whsec_" + base64.b64encode(os.urandom(32)).decode()


def sign(secrets, msg_id, ts, body):
    out = []
    for s in secrets:
        key = base64.b64decode(s[len("whsec_"):])
        mac = hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        out.append("v1," + base64.b64encode(mac).decode())
    return " ".join(out)


def check_signer_against_vectors():
    with open(VECTORS, encoding="utf-8") as f:
        for v in json.load(f)["standard"]:
            got = sign(v["secrets"], v["msg_id"], v["timestamp"], v["body"].encode())
            assert got == v["webhook-signature"], v["name"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, body, headers):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def run(kind):
    port = free_port()
    cmd = {
        "py": [sys.executable, "receiver.py"],
        "js": ["node", "receiver.js"],
        "php": ["php", "-S", f"127.0.0.1:{port}", "receiver.php"],
    }[kind]
    env = dict(os.environ, WEBHOOK_SECRET=SECRET, PORT=str(port))
    proc = subprocess.Popen(cmd, cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        now = int(time.time())
        event = {"id": "evt_1", "type": "konbini.paid",
                 "data": {"amount": 1200, "status_label_ja": "消込済（速報）"}}
        body = json.dumps(event, ensure_ascii=False).encode()

        def hdrs(secrets, ts=now, msg_id="evt_1", b=body):
            return {"content-type": "application/json", "webhook-id": msg_id,
                    "webhook-timestamp": str(ts), "webhook-signature": sign(secrets, msg_id, ts, b)}

        results = {
            "valid": post(port, body, hdrs([SECRET])),
            "rotation": post(port, body, hdrs([SECRET, OLD])),
            "rotation_old_first": post(port, body, hdrs([OLD, SECRET])),
            "wrong_secret": post(port, body, hdrs([OLD])),
            "tampered_body": post(port, body.replace(b"1200", b"9999"), hdrs([SECRET])),
            "stale": post(port, body, hdrs([SECRET], ts=now - 3600)),
            "missing_headers": post(port, body, {"content-type": "application/json"}),
        }
        want = {"valid": 200, "rotation": 200, "rotation_old_first": 200, "wrong_secret": 401,
                "tampered_body": 401, "stale": 401, "missing_headers": 401}
        assert results == want, f"{kind}: {results}"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=5)
    lines = [json.loads(l) for l in out.decode().splitlines() if l.strip().startswith("{")]
    assert len(lines) == 3 and all(l == event for l in lines), f"{kind}: stdout {lines}"
    print(f"receiver.{kind}: ok")


if __name__ == "__main__":
    check_signer_against_vectors()
    for kind in sys.argv[1:] or ["py", "js"]:
        run(kind)
