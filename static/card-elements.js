// Kakehashi card page with the processor's card form (Stripe.js Elements).
// The card number is typed into the processor's own field and sent only to the processor:
// this script posts our server the CSRF token and, when the merchant offers installments or
// saved cards, the processor's id of the card (pm_…) or of a saved card, the shopper's
// consent to save it, the chosen plan, and for a saved card whose security code the shop asks
// for, the processor's single-use token of that code (cvctok_…; the code itself is typed into
// the processor's own field and goes to the processor only). The server creates and confirms
// the payment intent and reads its outcome from the processor (never from this page).
(function () {
  'use strict';
  var form = document.getElementById('card-elements-form');
  if (!form) { return; }
  var errors = document.getElementById('card-errors');
  var button = document.getElementById('card-submit');
  function show(message) { errors.textContent = message || ''; }
  if (typeof window.Stripe !== 'function') {
    show(form.getAttribute('data-load-error'));
    button.disabled = true;
    return;
  }
  var attr = function (n) { return form.getAttribute('data-' + n); };
  var stripe = window.Stripe(attr('key'));
  var elements = stripe.elements({ locale: attr('locale') });
  var card = elements.create('card', { hidePostalCode: true });
  card.mount('#card-element');
  // A saved card's security code, when the shop asks for it: Stripe's own field.
  var cvc = null;
  if (attr('saved-cvc') === '1' && document.getElementById('card-cvc-element')) {
    cvc = elements.create('cardCvc');
    cvc.mount('#card-cvc-element');
  }
  card.on('change', function (event) {
    if (event && event.error) { show(event.error.message); } else if (event) { show(''); }
  });
  function finish() { window.location.assign(attr('return')); }
  var busy = false;
  function ready() { busy = false; button.disabled = false; }
  function post(url, extra) {
    return fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: 'csrf=' + encodeURIComponent(attr('csrf')) + extra
    }).then(function (response) {
      if (!response.ok) { throw new Error('HTTP ' + response.status); }
      return response.json();
    });
  }
  // Installments (Stripe's flow): the server confirms with the plan; 3-D Secure, if the
  // issuer asks, runs in Stripe.js afterwards.
  var cvcToken = '';
  function confirmPlan(code) {
    var extra = '&option=' + encodeURIComponent(code) +
      (cvcToken ? '&cvc_token=' + encodeURIComponent(cvcToken) : '');
    return post(attr('confirm'), extra).then(function (d) {
      if (d.next !== 'action') { return null; }
      return stripe.handleNextAction ? stripe.handleNextAction({ clientSecret: d.client_secret })
        : stripe.confirmCardPayment(d.client_secret);
    }).then(finish, finish);
  }
  function choosePlan(plans) {
    var box = document.getElementById('card-plans');
    var list = document.getElementById('card-plan-list');
    var all = [{ code: 'lump', label: attr('lump') }].concat(plans);
    all.forEach(function (p, i) {
      var label = document.createElement('label');
      var input = document.createElement('input');
      input.type = 'radio';
      input.name = 'option';
      input.value = p.code;
      input.checked = i === 0;
      label.appendChild(input);
      label.appendChild(document.createTextNode(' ' + p.label));
      list.appendChild(label);
    });
    button.hidden = true;
    box.hidden = false;
    document.getElementById('card-plan-submit').addEventListener('click', function (event) {
      event.target.disabled = true;
      var chosen = form.querySelector('input[name="option"]:checked');
      confirmPlan(chosen ? chosen.value : 'lump');
    });
  }
  function withPlans() {
    var saved = form.querySelector('input[name="saved"]:checked');
    if (saved && saved.value !== 'new') {
      var useSaved = function () {
        return afterIntent('&saved_card=' + encodeURIComponent(saved.value));
      };
      if (!cvc) { return useSaved(); }
      // Stripe turns the re-entered code into a single-use token (cvc_update).
      return stripe.createToken('cvc_update', cvc).then(function (r) {
        if (!r || !r.token) {
          show(r && r.error ? r.error.message : attr('load-error'));
          ready();
          return null;
        }
        cvcToken = r.token.id;
        return useSaved();
      }).then(null, finish);
    }
    var keep = document.getElementById('card-save');
    return stripe.createPaymentMethod({ type: 'card', card: card }).then(function (r) {
      if (!r || !r.paymentMethod) {
        show(r && r.error ? r.error.message : attr('load-error'));
        ready();
        return null;
      }
      return afterIntent('&payment_method=' + encodeURIComponent(r.paymentMethod.id) +
        (keep && keep.checked ? '&save_card=1' : ''));
    }).then(null, finish);
  }
  // The card is attached to the intent: choose a plan if Stripe offers some, then confirm.
  function afterIntent(fields) {
    return post(attr('intent'), fields).then(function (d) {
      if (d.plans && d.plans.length) { choosePlan(d.plans); return null; }
      return confirmPlan('lump');
    }).then(null, finish);
  }
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (busy) { return; }
    busy = true;
    button.disabled = true;
    show('');
    if (attr('installments') === '1') { withPlans(); return; }
    post(attr('intent'), '').then(function (data) {
      return stripe.confirmCardPayment(data.client_secret, { payment_method: { card: card } });
    }).then(function (result) {
      if (result && result.error && result.error.type === 'validation_error') {
        // Nothing was sent to the card issuer: let the shopper correct the field.
        show(result.error.message);
        ready();
        return;
      }
      // Paid, declined or 3-D Secure abandoned: our server asks the processor what happened.
      finish();
    }, finish);
  });
}());
