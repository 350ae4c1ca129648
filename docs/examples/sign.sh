#!/usr/bin/env bash
# kakehashi: print one signed checkout link (GET URL). Needs bash 4+ and openssl.
#   KEY_ID=k_... SECRET=sk_test_... ./sign.sh
# Run this on your server only: the secret must never reach a browser.
# Note: openssl receives the secret as an argument, so other local users may see it in `ps`.
set -euo pipefail

BASE_URL=${BASE_URL:-http://127.0.0.1:8080}
MERCHANT_ID=${MERCHANT_ID:-m_demo}
KEY_ID=${KEY_ID:?set KEY_ID}
SECRET=${SECRET:?set SECRET}
ORDER_ID=${ORDER_ID:-order-$(date +%s)}
AMOUNT=${AMOUNT:-1500}
ITEM_NAME=${ITEM_NAME:-テスト商品}
RETURN_URL=${RETURN_URL:-$BASE_URL/demo/return}
EXPIRES_AT=${EXPIRES_AT:-$(( $(date +%s) + ${EXPIRES_IN:-3600} ))}

# Percent-encode every byte except A-Z a-z 0-9 - . _ ~ (UTF-8 in, spaces become %20).
urlencode() {
  local LC_ALL=C s=$1 out= c i
  for (( i = 0; i < ${#s}; i++ )); do
    c=${s:i:1}
    case $c in
      [A-Za-z0-9._~-]) out+=$c ;;
      *) printf -v c '%%%02X' "'$c"; out+=${c: -3} ;;
    esac
  done
  printf '%s' "$out"
}

# name=value pairs; add optional fields (shopper_name, methods, lang, ...) here.
fields=(
  "merchant_id=$MERCHANT_ID"
  "key_id=$KEY_ID"
  "order_id=$ORDER_ID"
  "amount=$AMOUNT"
  "item_name=$ITEM_NAME"
  "return_url=$RETURN_URL"
  "expires_at=$EXPIRES_AT"
)

# Canonical string: drop empty values, sort by name (byte order), join with LF, no trailing LF.
# Sorting whole "name=value" lines equals sorting by name: '=' sorts before every name character.
canonical=$(for f in "${fields[@]}"; do [[ -n ${f#*=} ]] && printf '%s\n' "$f"; done | LC_ALL=C sort)
signature=$(printf '%s' "$canonical" | openssl dgst -sha256 -hmac "$SECRET" | awk '{print $NF}')

query=
while IFS= read -r f; do
  query+="${f%%=*}=$(urlencode "${f#*=}")&"
done <<< "$canonical"
printf '%s/checkout?%ssignature=%s\n' "$BASE_URL" "$query" "$signature"
