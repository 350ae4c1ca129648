<?php
// kakehashi: print one signed checkout link (GET URL). PHP 7+, standard library only.
//   KEY_ID=k_... SECRET=sk_test_... php sign.php
// Run this on your server only: the secret must never reach a browser.
// Keep this file (and your cart's PHP files) saved as UTF-8.

function kakehashi_env(string $name, string $default = ''): string {
    $v = getenv($name);
    return ($v === false || $v === '') ? $default : $v;
}

$baseUrl = kakehashi_env('BASE_URL', 'http://127.0.0.1:8080');
$keyId = kakehashi_env('KEY_ID');
$secret = kakehashi_env('SECRET');
if ($keyId === '' || $secret === '') {
    fwrite(STDERR, "set KEY_ID and SECRET\n");
    exit(1);
}
$now = time();

$fields = [
    'merchant_id' => kakehashi_env('MERCHANT_ID', 'm_demo'),
    'key_id'      => $keyId,
    'order_id'    => kakehashi_env('ORDER_ID', 'order-' . $now),
    'amount'      => kakehashi_env('AMOUNT', '1500'),
    'item_name'   => kakehashi_env('ITEM_NAME', 'テスト商品'),
    'return_url'  => kakehashi_env('RETURN_URL', $baseUrl . '/demo/return'),
    'expires_at'  => kakehashi_env('EXPIRES_AT', (string)($now + (int)kakehashi_env('EXPIRES_IN', '3600'))),
    // optional: 'shopper_name' => '山田 太郎', 'methods' => 'card,konbini', 'lang' => 'en', ...
];

// Canonical string: drop empty values, sort by name (byte order), join "name=value" with LF.
// Values are signed as raw UTF-8 strings; convert Shift_JIS data first (mb_convert_encoding).
function kakehashi_sign(array $fields, string $secret): array {
    unset($fields['signature'], $fields['_charset_']);
    $fields = array_filter($fields, function ($v) { return (string)$v !== ''; });
    ksort($fields, SORT_STRING);
    $lines = [];
    foreach ($fields as $k => $v) {
        $lines[] = $k . '=' . $v;
    }
    $fields['signature'] = hash_hmac('sha256', implode("\n", $lines), $secret);
    return $fields; // sorted, signature last
}

$signed = kakehashi_sign($fields, $secret);
// rawurlencode is RFC 3986 (%20 for spaces); never use urlencode() (it writes "+").
$query = [];
foreach ($signed as $k => $v) {
    $query[] = $k . '=' . rawurlencode((string)$v);
}
echo $baseUrl . '/checkout?' . implode('&', $query) . "\n";
