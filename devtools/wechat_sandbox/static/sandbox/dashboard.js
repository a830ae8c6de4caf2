/* The /sandbox/ page: a form with data-confirm asks before it is sent (the page's
 * Content-Security-Policy allows no inline handlers). */
(function () {
  'use strict';
  document.querySelectorAll('form[data-confirm]').forEach(function (form) {
    form.addEventListener('submit', function (event) {
      if (!window.confirm(form.dataset.confirm)) { event.preventDefault(); }
    });
  });
})();
