// Card form (the page works without it; the server checks everything again): Luhn, length and
// expiry as the shopper types, the brand shown, digits grouped, only the brand's options offered.
// Brand ranges and lengths as the server's domain::card; messages and "this month" from data-*.
(function () {
  var f = document.querySelector('form[data-card]'); if (!f) return;
  var D = f.dataset, $ = function (i) { return document.getElementById(i); };
  var n = $('cc-number'), m = $('cc-exp-month'), y = $('cc-exp-year'), o = $('cc-brand'), s = $('cc-option');
  var B = { visa: ['VISA', 16, 19], mastercard: ['Mastercard', 16], jcb: ['JCB', 16, 17, 18, 19],
    amex: ['American Express', 15], diners: ['Diners Club', 14, 15, 16, 17, 18, 19] };
  function brand(d) {
    var p = function (k) { return d.length >= k ? +d.slice(0, k) : -1; }, a = p(2), b = p(3), c = p(4);
    return d[0] == '4' ? 'visa' : a >= 51 && a <= 55 || c >= 2221 && c <= 2720 ? 'mastercard'
      : a == 34 || a == 37 ? 'amex' : a == 36 || a > 37 && a < 40 || b >= 300 && b <= 305 || c == 3095 ? 'diners'
      : c >= 3528 && c <= 3589 ? 'jcb' : null;
  }
  function digits(v) { return v.replace(/[０-９]/g, function (c) { return c.charCodeAt(0) - 0xff10; }).replace(/\D/g, ''); }
  function luhn(d) { // Luhn check digit
    for (var t = 0, i = 0; i < d.length; i++) { var v = +d[d.length - 1 - i] * (i % 2 + 1); t += v > 9 ? v - 9 : v; }
    return t % 10 == 0;
  }
  // Shows or clears an error as the server marks one (p.err, aria-invalid, aria-describedby).
  function mark(els, id, after, msg) {
    var p = $(id);
    if (msg && !p) { p = document.createElement('p'); p.className = 'err'; p.id = id; after.after(p); }
    if (msg) p.textContent = msg; else if (p) p.remove();
    els.forEach(function (e) {
      if (msg) { e.setAttribute('aria-invalid', 'true'); e.setAttribute('aria-describedby', id); }
      else { e.removeAttribute('aria-invalid'); e.removeAttribute('aria-describedby'); }
    });
    return !msg;
  }
  function checkNumber(done) {
    var d = digits(n.value), b = B[brand(d)], max = b ? b[b.length - 1] : 19;
    var bad = d && (!b ? done || d.length > 3
      : d.length > max || (done || d.length == max) && (b.indexOf(d.length) < 1 || !luhn(d)));
    return mark([n], 'cc-number-err', o, bad ? D.msgNumber : '');
  }
  function checkExpiry(done) {
    var a = m.value.trim(), b = y.value.trim(), t = D.today.split('-'), bad = 0;
    if (done || a.length > 1 && b.length > 1)
      bad = !/^\d\d?$/.test(a) || a < 1 || a > 12 || !/^(\d\d){1,2}$/.test(b)
        || ((b.length < 3 ? 2000 : 0) + +b) * 12 + +a < t[0] * 12 + +t[1];
    return mark([m, y], 'cc-exp-err', m.closest('fieldset'), bad ? D.msgExpiry : '');
  }
  n.addEventListener('input', function () {
    var d = digits(n.value), k = brand(d), g = k == 'amex' || k == 'diners' && d.length == 14 ? [4, 10] : [4, 8, 12, 16];
    var at = digits(n.value.slice(0, n.selectionStart)).length, v = '', i, p = 0;
    for (i = 0; i < d.length; i++) v += (g.indexOf(i) >= 0 ? ' ' : '') + d[i];
    if (v != n.value) {
      n.value = v;
      for (i = 0; p < v.length && i < at; p++) if (v[p] != ' ') i++;
      n.setSelectionRange(p, p);
    }
    o.textContent = k ? B[k][0] : '';
    for (i = 0; s && i < s.options.length; i++) {
      var x = s.options[i]; x.hidden = x.disabled = !!k && (x.dataset.not || '').indexOf(k) >= 0;
      if (x.disabled && x.selected) s.selectedIndex = 0;
    }
    checkNumber();
  });
  n.addEventListener('blur', function () { checkNumber(1); });
  m.addEventListener('input', function () { checkExpiry(); });
  y.addEventListener('input', function () { checkExpiry(); });
  y.addEventListener('blur', function () { checkExpiry(1); });
  f.addEventListener('submit', function (e) {
    var a = checkNumber(1), b = checkExpiry(1);
    if (!a || !b) { e.preventDefault(); (a ? m : n).focus(); }
  });
})();
