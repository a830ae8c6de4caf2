/* The recharge page: amount -> server prepay -> getBrandWCPayRequest -> the order's page,
 * which asks the server: the page's "ok" is never proof of payment. */
(function () {
  'use strict';
  var form = document.getElementById('recharge-form');
  if (!form) { return; }
  var site = window.WxSite;
  var input = form.querySelector('#amount');
  var button = form.querySelector('#pay-button');
  var error = form.querySelector('.recharge-error');
  var presets = form.querySelectorAll('.preset__input');
  var busy = false;

  function fen(text) {
    return /^[0-9]{1,9}(\.[0-9]{1,2})?$/.test(text) ? Math.round(parseFloat(text) * 100) : null;
  }

  // A preset is a radio: choosing one fills the amount; typing selects the preset of that
  // amount, if any, so a screen reader hears what will be paid.
  presets.forEach(function (preset) {
    preset.addEventListener('change', function () {
      if (!preset.checked) { return; }
      input.value = preset.value;
      showError('');
    });
  });
  input.addEventListener('input', function () {
    var typed = fen(input.value.trim());
    presets.forEach(function (p) { p.checked = typed !== null && fen(p.value) === typed; });
  });

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
    if (text) { error.focus(); }
  }

  function setBusy(value) {
    busy = value;
    button.disabled = value;
    button.classList.toggle('weui-btn_loading', value);
    button.textContent = value ? '正在支付…' : '立即充值';
  }

  // Back from the order's page (bfcache): the button must not stay "正在支付…".
  window.addEventListener('pageshow', function (event) { if (event.persisted) { setBusy(false); } });

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (busy) { return; }
    var amount = input.value.trim();
    if (fen(amount) === null) {
      showError('请输入正确的金额（最多两位小数）');
      return;
    }
    showError('');
    setBusy(true);
    site.api(form.dataset.prepayUrl, { method: 'POST', json: { amount: amount } })
      .then(function (r) {
        if (!r.ok) {
          if (r.body.error === 'openid_required' && r.body.bind_url) { window.location.assign(r.body.bind_url); return; }
          // WeChat already took the money for this amount's open order: its page says so.
          if (r.body.error === 'order_confirming' && r.body.order_url) { window.location.assign(r.body.order_url); return; }
          setBusy(false);
          showError(r.body.message);
          return;
        }
        var orderUrl = form.dataset.orderUrl.replace('OUT_TRADE_NO', encodeURIComponent(r.body.out_trade_no));
        site.pay(r.body.pay_params, orderUrl, function (url) { window.location.assign(url); });
      })
      .catch(function () {
        setBusy(false);
        showError(site.NETWORK_ERROR);
      });
  });
})();
