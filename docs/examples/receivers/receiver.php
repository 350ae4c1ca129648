<?php
// Minimal webhook receiver (PHP 7.4+, no extensions beyond the defaults).
//
//   WEBHOOK_SECRET=whsec_... PORT=8000 sh -c 'php -S 127.0.0.1:$PORT receiver.php'
//
// Verifies the Standard Webhooks signature, prints each verified event as one
// JSON line on the server's stdout, answers 200 (or 401 on a bad signature).
// In an existing app (EC-CUBE, WordPress, Laravel...) use the same verify function.

const TOLERANCE_S = 300; // reject stale/replayed requests

function webhook_verify(string $secret, string $msgId, string $timestamp, string $sigHeader, string $body): bool
{
    if (!ctype_digit($timestamp) || abs(time() - (int)$timestamp) > TOLERANCE_S) {
        return false;
    }
    if (strncmp($secret, 'whsec_', 6) === 0) {
        $secret = substr($secret, 6);
    }
    $key = base64_decode($secret, true);
    if ($key === false) {
        return false;
    }
    $expected = base64_encode(hash_hmac('sha256', $msgId . '.' . $timestamp . '.' . $body, $key, true));
    $ok = false;
    // Several signatures are sent while a secret is being rotated; any match is enough.
    foreach (explode(' ', $sigHeader) as $part) {
        $pieces = explode(',', $part, 2);
        if (count($pieces) === 2 && $pieces[0] === 'v1' && hash_equals($expected, $pieces[1])) {
            $ok = true;
        }
    }
    return $ok;
}

$secret = getenv('WEBHOOK_SECRET');
if ($secret === false || $secret === '') {
    http_response_code(500);
    exit;
}
if (($_SERVER['REQUEST_METHOD'] ?? '') !== 'POST') {
    http_response_code(405);
    exit;
}
$body = file_get_contents('php://input'); // verify the raw bytes, before json_decode
$ok = webhook_verify(
    $secret,
    $_SERVER['HTTP_WEBHOOK_ID'] ?? '',
    $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '',
    $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '',
    $body
);
if (!$ok) {
    http_response_code(401);
    exit;
}
$event = json_decode($body, true);
// Deduplicate on webhook-id (== $event['id']) in real code: retries resend it.
// php -S has no STDOUT constant; php://stdout reaches the server's stdout.
file_put_contents('php://stdout', json_encode($event, JSON_UNESCAPED_UNICODE | JSON_UNESCAPED_SLASHES) . "\n");
http_response_code(200);
header('Content-Type: text/plain');
echo 'OK';
