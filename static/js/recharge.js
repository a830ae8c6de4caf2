/* The recharge page: a package or an amount -> the server places the order the browser's way
 * (docs/paying.md) and says how to pay it: inside WeChat getBrandWCPayRequest, then the order's
 * page; elsewhere the order's page with its QR code, or WeChat's H5 page, which comes back to the
 * order's page. That page asks the server: a client's "ok" is never proof of payment. */
(function () {
  'use strict';
  var form = document.getElementById('recharge-form');
  if (!form) { return; }
  var site = window.WxSite;
  var input = form.querySelector('#amount');
  var button = form.querySelector('#pay-button');
  var error = form.querySelector('.recharge-error');
  var presets = form.querySelectorAll('.preset__input[name=preset]');
  var packages = form.querySelectorAll('.preset__input[name=package]');
  var packageHint = form.querySelector('.package-hint');
  var tierBonus = form.querySelector('.tier-hint__bonus');
  var tiersData = document.getElementById('recharge-tiers');
  // 满额赠送 on sale, from the server ({{ tiers|json_script }}: data, not a script the policy runs).
  var tiers = tiersData ? JSON.parse(tiersData.textContent) : [];
  var minFen = parseInt(form.dataset.minFen, 10);
  var maxFen = parseInt(form.dataset.maxFen, 10);
  var busy = false;

  function fen(text) {
    return /^[0-9]{1,9}(\.[0-9]{1,2})?$/.test(text) ? Math.round(parseFloat(text) * 100) : null;
  }

  function chosenPackage() {
    return form.querySelector('.preset__input[name=package]:checked');
  }

  // The tier an amount earns, as the server decides it (BonusTier.best_for): the highest
  // threshold it reaches, on a tie the larger bonus; tiers do not add up.
  function bestTier(amount) {
    var best = null;
    tiers.forEach(function (tier) {
      if (tier.threshold_fen > amount) { return; }
      if (!best || tier.threshold_fen > best.threshold_fen
          || (tier.threshold_fen === best.threshold_fen && tier.bonus_fen > best.bonus_fen)) { best = tier; }
    });
    return best;
  }

  // Under the amount field: what the typed amount gets ("充 ¥1200.00 送 ¥200.00").
  function showTierBonus() {
    if (!tierBonus) { return; }
    var amount = fen(input.value.trim());
    var tier = amount !== null && amount >= minFen && amount <= maxFen ? bestTier(amount) : null;
    var text = '';
    if (tier) {
      text = '充 ' + site.formatFen(amount) + ' 送 ' + site.formatFen(tier.bonus_fen)
        + (tier.bonus_valid_days ? '（赠送 ' + tier.bonus_valid_days + ' 天内有效）' : '');
    }
    tierBonus.textContent = text;
  }

  // Under the grid: what the chosen package brings, how long its bonus lasts, its limit.
  function showPackageHint() {
    if (!packageHint) { return; }
    var chosen = chosenPackage();
    packageHint.textContent = chosen ? chosen.dataset.hint : '';
  }

  // A preset is a radio: choosing one fills the amount; typing selects the preset of that
  // amount, if any, so a screen reader hears what will be paid.
  presets.forEach(function (preset) {
    preset.addEventListener('change', function () {
      if (!preset.checked) { return; }
      input.value = preset.value;
      showError('');
      showTierBonus();
    });
  });
  // A package is bought as it is (its price, its bonus): choosing one empties the amount
  // field, and typing an amount of one's own lets go of the package.
  packages.forEach(function (pkg) {
    pkg.addEventListener('change', function () {
      if (!pkg.checked) { return; }
      input.value = '';
      showError('');
      showPackageHint();
      showTierBonus();
    });
  });
  input.addEventListener('input', function () {
    var typed = fen(input.value.trim());
    presets.forEach(function (p) { p.checked = typed !== null && fen(p.value) === typed; });
    if (input.value !== '') {
      packages.forEach(function (p) { p.checked = false; });
      showPackageHint();
    }
    showTierBonus();
  });
  showTierBonus();

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
    if (text) { error.focus(); }
  }

  function setBusy(value) {
    busy = value;
    button.disabled = value;
    button.classList.toggle('weui-btn_loading', value);
    button.textContent = value ? '正在支付…' : button.dataset.label;
  }

  // Back from the order's page (bfcache): the button must not stay "正在支付…".
  window.addEventListener('pageshow', function (event) { if (event.persisted) { setBusy(false); } });

  // What to buy: the chosen package, else the amount typed (or filled by a preset).
  function offer() {
    var chosen = chosenPackage();
    if (chosen) { return { package: parseInt(chosen.value, 10) }; }
    var amount = input.value.trim();
    if (!amount && packages.length) { return '请选择充值套餐或输入金额'; }
    if (fen(amount) === null) { return '请输入正确的金额（最多两位小数）'; }
    return { amount: amount };
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (busy) { return; }
    var body = offer();
    if (typeof body === 'string') {
      showError(body);
      return;
    }
    showError('');
    setBusy(true);
    site.api(form.dataset.prepayUrl, { method: 'POST', json: body })
      .then(function (r) {
        if (!r.ok) {
          if (r.body.error === 'openid_required' && r.body.bind_url) { window.location.assign(r.body.bind_url); return; }
          // WeChat already took the money for this amount's open order: its page says so.
          if (r.body.error === 'order_confirming' && r.body.order_url) { window.location.assign(r.body.order_url); return; }
          // package_unavailable, package_limit, balance_cap, ...: the server's own words.
          setBusy(false);
          showError(r.body.message);
          return;
        }
        // Where to go comes from our server's answer (order_url, WeChat's URL), never from the page's address.
        var pay = r.body.pay || {};
        if (pay.kind === 'qrcode') {
          // The order's page shows the QR code; ?notice=h5 only asks it to say (in its own
          // words) that H5 pay was not available.
          window.location.assign(r.body.order_url + (pay.notice ? '?notice=h5' : ''));
          return;
        }
        if (pay.kind === 'redirect') {
          window.location.assign(pay.url);
          return;
        }
        site.pay(pay.params || r.body.pay_params, r.body.order_url, function (url) { window.location.assign(url); });
      })
      .catch(function () {
        setBusy(false);
        showError(site.NETWORK_ERROR);
      });
  });
})();
