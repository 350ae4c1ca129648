#!/usr/bin/env node
// kakehashi: print one signed checkout link (GET URL). Node 12+, standard library only.
//   KEY_ID=k_... SECRET=sk_test_... node sign.js
// Run this on your server only: the secret must never reach a browser.
'use strict';
const crypto = require('crypto');

const env = process.env;
const baseUrl = env.BASE_URL || 'http://127.0.0.1:8080';
if (!env.KEY_ID || !env.SECRET) {
  console.error('set KEY_ID and SECRET');
  process.exit(1);
}
const now = Math.floor(Date.now() / 1000);

const fields = {
  merchant_id: env.MERCHANT_ID || 'm_demo',
  key_id: env.KEY_ID,
  order_id: env.ORDER_ID || `order-${now}`,
  amount: env.AMOUNT || '1500',
  item_name: env.ITEM_NAME || 'テスト商品',
  return_url: env.RETURN_URL || `${baseUrl}/demo/return`,
  expires_at: env.EXPIRES_AT || String(now + Number(env.EXPIRES_IN || 3600)),
  // optional: shopper_name: '山田 太郎', methods: 'card,konbini', lang: 'en', ...
};

// Canonical string: drop empty values, sort by name (byte order), join "name=value" with LF.
function sign(fields, secret) {
  const names = Object.keys(fields)
    .filter((k) => fields[k] !== '' && k !== 'signature' && k !== '_charset_')
    .sort(); // field names are ASCII, so this is byte order
  const canonical = names.map((k) => `${k}=${fields[k]}`).join('\n');
  const signature = crypto.createHmac('sha256', Buffer.from(secret, 'utf8'))
    .update(canonical, 'utf8').digest('hex');
  return { names, signature };
}

// RFC 3986: also encode ! ' ( ) * which encodeURIComponent leaves alone.
const enc = (v) => encodeURIComponent(v).replace(/[!'()*]/g,
  (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());

const { names, signature } = sign(fields, env.SECRET);
const query = names.map((k) => `${k}=${enc(fields[k])}`).join('&');
console.log(`${baseUrl}/checkout?${query}&signature=${signature}`);
