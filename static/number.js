// Payment-number page: "Copy" buttons and a print button. They are hidden in the HTML and shown
// only when this script runs and the browser can do it, so the page is complete without it.
(function () {
  var status = document.getElementById('copy-status');
  if (navigator.clipboard && window.isSecureContext) {
    document.querySelectorAll('button[data-copy]').forEach(function (b) {
      b.hidden = false;
      b.addEventListener('click', function () {
        navigator.clipboard.writeText(b.getAttribute('data-copy')).then(function () {
          // Said in the live region (and marked on the button); the button's own name stays.
          if (status) status.textContent = b.getAttribute('data-done');
          b.classList.add('done');
          setTimeout(function () { b.classList.remove('done'); }, 2000);
        });
      });
    });
  }
  var print = document.getElementById('print');
  if (print && window.print) {
    print.hidden = false;
    print.addEventListener('click', function () { window.print(); });
  }
})();
