#!/usr/bin/env python3
"""Drives one scenario a fixed number of times over one keep-alive connection, for profiling
the server under callgrind (instruction counts are repeatable on a loaded machine; wall-clock
is not). Between warm-up and the measured requests it turns callgrind's collection on, and
dumps after, so each scenario's cost is its own file.

Usage: drive.py BASE_URL DATABASE_URL SERVER_PID SCENARIO N
Scenarios: bare, reopen, select, open, card (4 requests each: open, select, card POST, result).
"""
import hashlib, hmac, http.client, re, subprocess, sys, time, urllib.parse, uuid

base, db_url, pid, scenario, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
host, port = urllib.parse.urlsplit(base).hostname, urllib.parse.urlsplit(base).port


def demo_key():
    q = ("SELECT id || ' ' || secret FROM signing_keys WHERE merchant_id = 'm_demo' "
         "AND status = 'active' ORDER BY created_at DESC LIMIT 1")
    if db_url.startswith("postgres"):
        out = subprocess.check_output(["psql", "-At", db_url, "-c", q])
    else:
        out = subprocess.check_output(["sqlite3", db_url.split("://", 1)[1], q])
    return out.decode().split()


key_id, secret = demo_key()


def link(order):
    fields = {"merchant_id": "m_demo", "key_id": key_id, "order_id": order, "amount": "1500",
              "item_name": "ベンチマーク商品", "return_url": base + "/demo/return",
              "expires_at": str(int(time.time()) + 3600)}
    canon = "\n".join(f"{k}={v}" for k, v in sorted(fields.items()))
    fields["signature"] = hmac.new(secret.encode(), canon.encode(), hashlib.sha256).hexdigest()
    return "/checkout?" + urllib.parse.urlencode(fields)


conn = http.client.HTTPConnection(host, port)


def req(method, path, body=None):
    headers = {"content-type": "application/x-www-form-urlencoded"} if body else {}
    conn.request(method, path, body=body, headers=headers)
    r = conn.getresponse()
    return r.status, r.getheader("location"), r.read().decode("utf-8", "replace")


def form(page):
    action = re.search(r'action="([^"]+)"', page).group(1).replace("&#38;", "&")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return action, csrf


run = uuid.uuid4().hex[:8]
same = link(f"{run}-same")
_, _, first = req("GET", same)
action, csrf = form(first)


def once(i):
    if scenario == "bare":
        return req("GET", "/healthz")[0] == 200
    if scenario == "reopen":
        return req("GET", same)[0] == 200
    if scenario == "select":
        return req("POST", action, f"csrf={csrf}&method=card")[0] == 303
    if scenario == "open":
        return req("GET", link(f"{run}-new-{i}"))[0] == 200
    if scenario == "card":
        _, _, page = req("GET", link(f"{run}-pay-{i}"))
        a, c = form(page)
        _, card, _ = req("POST", a, f"csrf={c}&method=card")
        body = f"csrf={c}&number=4111111111111111&exp_month=12&exp_year=30&cvc=123&option=lump"
        _, result, _ = req("POST", card, body)
        return "result-success" in req("GET", result)[2]
    raise SystemExit(f"unknown scenario {scenario}")


for i in range(20):  # warm-up: statement caches, pools, allocator
    once(-i - 1)
cg = pid != "0"
if cg:
    subprocess.run(["callgrind_control", "-i", "on", pid], check=True, capture_output=True)
t = time.time()
bad = sum(0 if once(i) else 1 for i in range(n))
el = time.time() - t
if cg:
    subprocess.run(["callgrind_control", "-d", scenario, pid], check=True, capture_output=True)
    subprocess.run(["callgrind_control", "-i", "off", pid], check=True, capture_output=True)
print(f"{scenario}: {n} in {el:.2f}s, {bad} failed", file=sys.stderr)
