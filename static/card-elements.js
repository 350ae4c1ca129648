// Kakehashi card page with the processor's card form (Stripe.js Elements).
// The card number is typed into the processor's own field and sent only to the processor:
// this script posts nothing but the CSRF token to our server, which creates the payment
// intent and later reads its outcome from the processor (never from this page).
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
  var stripe = window.Stripe(form.getAttribute('data-key'));
  var elements = stripe.elements({ locale: form.getAttribute('data-locale') });
  var card = elements.create('card', { hidePostalCode: true });
  card.mount('#card-element');
  card.on('change', function (event) {
    if (event && event.error) { show(event.error.message); } else if (event) { show(''); }
  });
  var returnUrl = form.getAttribute('data-return');
  function finish() { window.location.assign(returnUrl); }
  var busy = false;
  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (busy) { return; }
    busy = true;
    button.disabled = true;
    show('');
    var body = 'csrf=' + encodeURIComponent(form.getAttribute('data-csrf'));
    fetch(form.getAttribute('data-intent'), {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: body
    }).then(function (response) {
      if (!response.ok) { throw new Error('intent ' + response.status); }
      return response.json();
    }).then(function (data) {
      return stripe.confirmCardPayment(data.client_secret, { payment_method: { card: card } });
    }).then(function (result) {
      if (result && result.error && result.error.type === 'validation_error') {
        // Nothing was sent to the card issuer: let the shopper correct the field.
        show(result.error.message);
        busy = false;
        button.disabled = false;
        return;
      }
      // Paid, declined or 3-D Secure abandoned: our server asks the processor what happened.
      finish();
    }, finish);
  });
}());
