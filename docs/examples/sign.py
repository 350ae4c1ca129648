#!/usr/bin/env python3
"""kakehashi: print one signed checkout link (GET URL). Python 3.6+, standard library only.

    KEY_ID=k_... SECRET=sk_test_... python3 sign.py

Run this on your server only: the secret must never reach a browser.
"""
import hashlib
import hmac
import os
import sys
import time
from urllib.parse import quote

env = os.environ.get
base_url = env("BASE_URL", "http://127.0.0.1:8080")
key_id, secret = env("KEY_ID"), env("SECRET")
if not key_id or not secret:
    sys.exit("set KEY_ID and SECRET")
now = int(time.time())

fields = {
    "merchant_id": env("MERCHANT_ID", "m_demo"),
    "key_id": key_id,
    "order_id": env("ORDER_ID", "order-%d" % now),
    "amount": env("AMOUNT", "1500"),
    "item_name": env("ITEM_NAME", "テスト商品"),
    "return_url": env("RETURN_URL", base_url + "/demo/return"),
    "expires_at": env("EXPIRES_AT") or str(now + int(env("EXPIRES_IN", "3600"))),
    # optional: "shopper_name": "山田 太郎", "methods": "card,konbini", "lang": "en", ...
}


def sign(fields, secret):
    """Returns (sorted non-empty fields, lowercase hex HMAC-SHA256 of the canonical string)."""
    kept = sorted((k, v) for k, v in fields.items() if v != "" and k not in ("signature", "_charset_"))
    canonical = "\n".join("%s=%s" % kv for kv in kept)
    digest = hmac.new(secret.encode("utf-8"), canonical.encode("utf-8"), hashlib.sha256)
    return kept, digest.hexdigest()


kept, signature = sign(fields, secret)
query = "&".join("%s=%s" % (k, quote(v, safe="")) for k, v in kept + [("signature", signature)])
print("%s/checkout?%s" % (base_url, query))
