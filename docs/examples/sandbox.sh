#!/usr/bin/env bash
# kakehashi sandbox controls: make a test-mode konbini / Pay-easy payment paid (速報), confirmed
# (確報) or reversed (速報取消), or expire it. Needs bash, curl and openssl.
#   MERCHANT_ID=m_... KEY_ID=k_... SECRET=sk_test_... ./sandbox.sh paid pay_...
#   ./sandbox.sh paid pay_... 1767225600     # paid at a given time (unix seconds)
# Run this on your server or test machine only: the secret must never reach a browser.
set -euo pipefail

BASE_URL=${BASE_URL:-http://127.0.0.1:8080}
MERCHANT_ID=${MERCHANT_ID:?set MERCHANT_ID}
KEY_ID=${KEY_ID:?set KEY_ID}
SECRET=${SECRET:?set SECRET}
ACTION=${1:?usage: sandbox.sh paid|confirm|reverse|expire PAYMENT_ID [PAID_AT]}
PAYMENT_ID=${2:?usage: sandbox.sh paid|confirm|reverse|expire PAYMENT_ID [PAID_AT]}
PAID_AT=${3:-}

# The path as sent, query included. (Not named PATH: that would replace the shell's PATH.)
REQ_PATH="/sandbox/v1/payments/$PAYMENT_ID/$ACTION"
if [[ -n $PAID_AT ]]; then REQ_PATH+="?paid_at=$PAID_AT"; fi
TS=$(date +%s)

# String to sign: METHOD LF PATH LF TIMESTAMP (no trailing LF); hex HMAC-SHA256 with the secret.
SIGNATURE=$(printf 'POST\n%s\n%s' "$REQ_PATH" "$TS" | openssl dgst -sha256 -hmac "$SECRET" | awk '{print $NF}')

curl -sS -X POST "$BASE_URL$REQ_PATH" \
  -H "X-Merchant-Id: $MERCHANT_ID" \
  -H "X-Key-Id: $KEY_ID" \
  -H "X-Timestamp: $TS" \
  -H "X-Signature: $SIGNATURE"
echo
