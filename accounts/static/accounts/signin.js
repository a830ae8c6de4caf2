/* Sign-in and register: a submitted form's button says it is working and cannot be pressed
 * again (a second tap would post twice). Without this file the forms post as plain HTML. */
(function () {
  'use strict';

  function spinner(button) {
    var spin = document.createElement('span');
    spin.className = 'weui-primary-loading' +
      (button.classList.contains('weui-btn_primary') ? ' weui-primary-loading_transparent' : '');
    spin.setAttribute('aria-hidden', 'true');
    var dot = document.createElement('span');
    dot.className = 'weui-primary-loading__dot';
    spin.appendChild(dot);
    return spin;
  }

  function setBusy(button, busy) {
    if (!button.dataset.label) { button.dataset.label = button.textContent; }
    button.disabled = busy;
    button.classList.toggle('weui-btn_loading', busy);
    button.textContent = busy ? button.dataset.busyText : button.dataset.label;
    if (busy) { button.insertBefore(spinner(button), button.firstChild); }
  }

  var buttons = [];
  document.querySelectorAll('form[data-busy-form]').forEach(function (form) {
    var button = form.querySelector('button[type=submit][data-busy-text]');
    if (!button) { return; }
    buttons.push(button);
    // Disabled once the browser has taken the submission: the post goes ahead, a second does not.
    form.addEventListener('submit', function () {
      buttons.forEach(function (b) { b.disabled = true; });
      setBusy(button, true);
    });
  });

  // Back from the next page (bfcache): the buttons must not stay "登录中…".
  window.addEventListener('pageshow', function (event) {
    if (event.persisted) { buttons.forEach(function (b) { setBusy(b, false); }); }
  });
})();
