/* The member pay code (会员码) page: keep the code shown current, and say 支付成功 when a
 * counter has charged it.
 *
 * Every couple of seconds (data-poll-seconds) the page asks code.json?code=<the code shown>.
 * The answer is the code to show now (the server draws a new one when the shown one is a
 * minute old, data-renew-seconds, so the code renews every minute), the balance and, once a
 * counter has charged the code shown, `paid`: then the page stops asking and shows the
 * charge. Asking pauses while the page is hidden and starts again, at once, when it is
 * shown. A code whose validity ran out with no newer one (no network) is covered: the
 * counter would refuse it anyway. 刷新 asks now. The SVG images come from the server, made
 * from the code's digits alone. */
(function () {
  'use strict';
  var site = window.WxSite;
  var view = document.getElementById('paycode');
  if (!view) { return; }

  var show = view.querySelector('#paycode-show');
  var paidView = view.querySelector('#paycode-paid');
  var barcodeBox = view.querySelector('[data-testid=barcode]');
  var qrBox = view.querySelector('[data-testid=qr]');
  var digits = view.querySelector('[data-testid=code-digits]');
  var codes = view.querySelector('[data-testid=paycode-codes]');
  var stale = view.querySelector('[data-testid=paycode-stale]');
  var notice = view.querySelector('[data-testid=paycode-notice]');
  var refreshButton = view.querySelector('[data-action=refresh]');
  var newCodeButton = view.querySelector('[data-action=new-code]');
  var pollMs = (Number(view.dataset.pollSeconds) || 2) * 1000;

  var shown = view.dataset.code;
  var expiresAt = Date.now() + Number(view.dataset.expiresIn) * 1000;
  // The codes this page showed that may still be valid (a counter may charge the previous
  // code just after the page moved on to the next): asked about together.
  var recent = [{ code: shown, until: expiresAt }];
  var timer = null;
  var busy = false;
  var paid = false;

  function showNotice(text) {
    notice.textContent = text || '';
    notice.hidden = !text;
  }

  function checkExpiry() {
    var expired = Date.now() >= expiresAt;
    stale.hidden = !expired;
    codes.classList.toggle('paycode-codes_stale', expired);
  }

  function draw(body) {
    if (body.code !== shown) {
      barcodeBox.innerHTML = body.barcode_svg;
      qrBox.innerHTML = body.qr_svg;
      digits.textContent = body.digits;
      shown = body.code;
      view.dataset.code = shown;
      recent.push({ code: shown, until: Date.now() + body.expires_in * 1000 });
    }
    expiresAt = Date.now() + body.expires_in * 1000;
    recent = recent.filter(function (item) { return item.until > Date.now() - 5000; }).slice(-3);
    checkExpiry();
  }

  function showPaid(charge) {
    paid = true;
    clearTimeout(timer);
    view.querySelector('[data-testid=paid-amount]').textContent = '¥' + charge.amount_yuan;
    var where = [charge.store, charge.description].filter(Boolean).join(' · ');
    var whereLine = view.querySelector('[data-testid=paid-where]');
    whereLine.textContent = where;
    whereLine.hidden = !where;
    view.querySelector('[data-testid=paid-balance]').textContent = '当前余额 ¥' + charge.balance_yuan;
    show.hidden = true;
    paidView.hidden = false;
    view.querySelector('#paycode-paid-title').focus();
  }

  function schedule() {
    clearTimeout(timer);
    if (paid || document.hidden) { return; }
    timer = setTimeout(function () { ask(false); }, pollMs);
  }

  function ask(byHand) {
    if (busy) { return; }
    clearTimeout(timer);
    busy = true;
    if (byHand) {
      refreshButton.disabled = true;
      refreshButton.classList.add('weui-btn_loading');
    }
    function done() {
      busy = false;
      if (byHand) {
        refreshButton.disabled = false;
        refreshButton.classList.remove('weui-btn_loading');
      }
    }
    var url = view.dataset.jsonUrl + (paid ? '' : '?' + recent.map(function (item) {
      return 'code=' + encodeURIComponent(item.code);
    }).join('&'));
    site.api(url)
      .then(function (r) {
        done();
        if (r.status === 401) {
          // Signed out meanwhile: the page itself sends the person to sign in, and back here.
          window.location.reload();
          return;
        }
        if (!r.ok) {
          showNotice(r.body.message);
          checkExpiry();
          schedule();
          return;
        }
        showNotice('');
        site.updateBalance(r.body.balance);
        if (r.body.paid && !paid) {
          showPaid(r.body.paid);
          return;
        }
        if (!paid) { draw(r.body); }
        schedule();
      })
      .catch(function () {
        done();
        showNotice(site.NETWORK_ERROR);
        checkExpiry();
        schedule();
      });
  }

  refreshButton.addEventListener('click', function () { ask(true); });

  newCodeButton.addEventListener('click', function () {
    if (busy) { return; }
    busy = true;
    newCodeButton.disabled = true;
    newCodeButton.classList.add('weui-btn_loading');
    function done() {
      busy = false;
      newCodeButton.disabled = false;
      newCodeButton.classList.remove('weui-btn_loading');
    }
    site.api(view.dataset.jsonUrl)
      .then(function (r) {
        done();
        if (r.status === 401) { window.location.reload(); return; }
        if (!r.ok) { showNotice(r.body.message); return; }
        showNotice('');
        paid = false;
        site.updateBalance(r.body.balance);
        draw(r.body);
        paidView.hidden = true;
        show.hidden = false;
        schedule();
      })
      .catch(function () {
        done();
        showNotice(site.NETWORK_ERROR);
      });
  });

  document.addEventListener('visibilitychange', function () {
    if (document.hidden) { clearTimeout(timer); return; }
    if (!paid) { ask(false); }
  });
  // A page restored from the back/forward cache shows what it showed when it was left.
  window.addEventListener('pageshow', function (event) {
    if (event.persisted && !paid) { ask(false); }
  });
  // The cover over an expired code does not wait for the next answer.
  setInterval(checkExpiry, 1000);

  schedule();
})();
