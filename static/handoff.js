// PC → phone hand-off: while the selector shows the QR code, ask every few seconds how the
// checkout stands; once the phone has started or finished a payment, reload so this page shows
// the same state. Without the script the page offers a link that does the same.
(function () {
  var qr = document.getElementById('handoff-qr');
  if (!qr || !window.fetch) return;
  var url = qr.getAttribute('data-state');
  var tries = 0;
  function poll() {
    // About 20 minutes, longer than a hand-off session lives.
    if (++tries > 300) return;
    fetch(url, { cache: 'no-store', credentials: 'omit' }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (s) {
      if (s && s.state !== 'open') { window.location.reload(); } else { setTimeout(poll, 4000); }
    }, function () { setTimeout(poll, 8000); });
  }
  setTimeout(poll, 4000);
})();
