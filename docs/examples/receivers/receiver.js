#!/usr/bin/env node
// Minimal webhook receiver (Node 18+, standard library only).
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 node receiver.js
//
// Verifies the Standard Webhooks signature, prints each verified event as one
// JSON line on stdout, answers 200 (or 401 on a bad signature).
'use strict';
const http = require('node:http');
const crypto = require('node:crypto');

const SECRET = process.env.WEBHOOK_SECRET;
if (!SECRET) throw new Error('WEBHOOK_SECRET is required');
const PORT = Number(process.env.PORT || 8000);
const TOLERANCE_S = 5 * 60; // reject stale/replayed requests
const KEY = Buffer.from(SECRET.startsWith('whsec_') ? SECRET.slice(6) : SECRET, 'base64');

function verify(msgId, timestamp, signatureHeader, body) {
  if (!/^\d+$/.test(timestamp || '')) return false;
  const ts = Number(timestamp);
  if (Math.abs(Date.now() / 1000 - ts) > TOLERANCE_S) return false;
  const expected = crypto
    .createHmac('sha256', KEY)
    .update(Buffer.concat([Buffer.from(`${msgId}.${ts}.`), body]))
    .digest();
  let ok = false;
  // Several signatures are sent while a secret is being rotated; any match is enough.
  for (const part of (signatureHeader || '').split(' ')) {
    const [version, sig] = part.split(',', 2);
    if (version !== 'v1' || !sig) continue;
    const got = Buffer.from(sig, 'base64');
    if (got.length === expected.length && crypto.timingSafeEqual(got, expected)) ok = true;
  }
  return ok;
}

http
  .createServer((req, res) => {
    if (req.method !== 'POST') {
      res.writeHead(405).end();
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks); // verify the raw bytes, before JSON parsing
      const h = req.headers;
      if (!verify(h['webhook-id'] || '', h['webhook-timestamp'], h['webhook-signature'], body)) {
        res.writeHead(401).end();
        return;
      }
      const event = JSON.parse(body.toString('utf8'));
      // Deduplicate on webhook-id (== event.id) in real code: retries resend it.
      process.stdout.write(JSON.stringify(event) + '\n');
      res.writeHead(200, { 'Content-Type': 'text/plain' }).end('OK');
    });
  })
  .listen(PORT, '127.0.0.1');
