/* The order's page: while pending, ask the server for its status at growing intervals (then
 * stop and say so; a QR code's page goes on asking while its code is valid); 刷新 asks now;
 * 继续支付 pays the same order again, the way it was placed (docs/paying.md); 完成 closes the
 * page inside WeChat. A Native order's QR code counts down to its end, and on a phone its link
 * can be copied; back from WeChat's H5 page the person says whether they paid. When the status
 * changes (or WeChat turns out to have taken the money: the payment is being confirmed), the
 * server's rendering of the page replaces ours. The line under the status says one thing at a
 * time: still checking, or stopped. Nothing here follows a URL taken from the page's address. */
(function () {
  'use strict';
  var site = window.WxSite;
  // Seconds between checks: quick at first (the notify usually comes within seconds), then
  // less often; about two and a half minutes in all.
  var DELAYS = [1, 2, 3, 5, 8, 13, 21, 34, 55];
  // Then, while a QR code can still be scanned, every so often: the person may take minutes
  // to reach for their phone, and the page should turn to 支付成功 by itself.
  var QR_EVERY = 15;

  // Time left as the server writes it (orders.views.clock): 14:59, or 1:59:59 past an hour.
  function clock(seconds) {
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    function two(n) { return (n < 10 ? '0' : '') + n; }
    return h ? h + ':' + two(m) + ':' + two(s) : two(m) + ':' + two(s);
  }

  function init(view, announce) {
    if (!view) { return; }
    var headline = view.querySelector('#order-result');
    var notice = view.querySelector('[data-testid=order-notice]');
    var poll = view.querySelector('[data-testid=order-poll]');
    var payButtons = view.querySelectorAll('[data-action=pay]');
    var h5Return = view.querySelector('[data-testid=h5-return]');
    var qr = view.querySelector('[data-testid=pay-qr]');
    var refreshButton = view.querySelector('[data-action=refresh]');
    var doneLink = view.querySelector('[data-action=done]');
    var timer = null;
    var step = 0;
    var leaving = false;
    var confirming = view.dataset.confirming === '1';
    // Waiting for a payment to land (WeChat's client said ok, or WeChat took the money): say
    // that the page follows it, for as long as it does.
    var awaiting = confirming || view.dataset.result === 'ok';
    // The person says they paid (WeChat's client said ok, or 已完成支付 back from H5): the
    // server may ask WeChat every second rather than every five.
    var claimedPaid = view.dataset.result === 'ok';
    var qrLive = Boolean(qr);
    var countdown = null;

    function showNotice(text) {
      notice.textContent = text;
      notice.hidden = !text;
      if (text) { notice.focus(); }
    }

    if (view.dataset.result === 'fail') {
      var reason = site.payError(view.dataset.detailUrl);
      var payError = view.querySelector('[data-testid=pay-error]');
      if (reason && payError) { payError.textContent = reason; payError.hidden = false; }
    }
    if (announce) { headline.focus(); }

    if (doneLink) {
      doneLink.addEventListener('click', function (event) {
        // Inside WeChat 完成 closes the page, as WeChat's own result pages do; elsewhere
        // (and in the sandbox, whose stand-in bridge cannot close anything) it goes to 充值.
        var bridge = window.WeixinJSBridge;
        if (bridge && !bridge.sandbox && typeof bridge.call === 'function') {
          event.preventDefault();
          bridge.call('closeWindow');
        }
      });
    }

    var copyButton = view.querySelector('[data-action=copy-link]');
    if (copyButton) {
      var copied = view.querySelector('[data-testid=copy-status]');
      var linkBox = view.querySelector('[data-testid=pay-link]');
      copyButton.addEventListener('click', function () {
        // No clipboard (an http:// address, an old browser, a refusal): show the link to copy by hand.
        function byHand() {
          copied.textContent = '';
          linkBox.hidden = false;
          var field = linkBox.querySelector('input');
          field.focus();
          field.select();
        }
        if (!navigator.clipboard || !window.isSecureContext) { byHand(); return; }
        navigator.clipboard.writeText(copyButton.dataset.link).then(function () {
          linkBox.hidden = true;
          copied.textContent = '链接已复制';
        }, byHand);
      });
    }

    if (view.dataset.status !== 'pending') { return; }

    // The server's page for the new status replaces this one, with focus on what it says.
    function replaceView() {
      return fetch(view.dataset.detailUrl + window.location.search,
                   { credentials: 'same-origin', headers: { Accept: 'text/html' } })
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, 'text/html');
          var fresh = doc.getElementById('order-view');
          if (!fresh) { throw new Error('no order view'); }
          var balance = doc.querySelector('[data-testid=header-balance]');
          clearTimeout(timer);
          clearTimeout(countdown);
          leaving = true;
          view.replaceWith(fresh);
          if (balance) { document.querySelectorAll('[data-testid=header-balance]').forEach(function (el) { el.textContent = balance.textContent; }); }
          init(fresh, true);
          return fresh;
        });
    }

    function schedule() {
      if (leaving) { return; }
      if (step >= DELAYS.length) {
        if (qrLive) {
          clearTimeout(timer);
          timer = setTimeout(function () { check(false); }, QR_EVERY * 1000);
          return;
        }
        poll.textContent = confirming ? '已停止自动查询。请稍后点「刷新」查看是否已到账。'
          : '已停止自动查询。如已付款，请点「刷新」查看最新状态。';
        return;
      }
      clearTimeout(timer);  // never two checks waiting at once
      timer = setTimeout(function () { check(false); }, DELAYS[step++] * 1000);
    }

    function check(byHand) {
      clearTimeout(timer);
      if (byHand) {
        refreshButton.disabled = true;
        refreshButton.classList.add('weui-btn_loading');
      }
      function done() {
        if (byHand) {
          refreshButton.disabled = false;
          refreshButton.classList.remove('weui-btn_loading');
        }
      }
      // After WeChat's client said "ok" the server may ask WeChat every second, not every five.
      site.api(view.dataset.statusUrl + (claimedPaid ? '?paid=1' : ''))
        .then(function (r) {
          done();
          if (!r.ok) {
            if (byHand) { showNotice(r.body.message); }
            if (r.status !== 404) { schedule(); }
            return;
          }
          if (r.body.status !== 'pending' || (r.body.confirming && !confirming)) {
            site.updateBalance(r.body.balance_fen);
            return replaceView().catch(function () { window.location.reload(); });
          }
          if (byHand) {
            // Asked by hand: start the schedule again from the beginning.
            step = 0;
            poll.textContent = awaiting ? '还没有到账，到账后本页会自动更新。' : '还没有收到支付结果，将继续自动查询。';
          }
          schedule();
        })
        .catch(function () {
          done();
          if (byHand) { showNotice(site.NETWORK_ERROR); }
          schedule();
        });
    }

    refreshButton.addEventListener('click', function () { showNotice(''); check(true); });

    // 继续支付, the way the order was placed: WeChat's sheet (JSAPI), the new QR code on this
    // page (Native), or WeChat's H5 page again (H5). Every URL followed comes from the server's answer.
    function payAgain(button) {
      if (button.disabled) { return; }
      showNotice('');
      // A JSAPI order is paid in WeChat only: elsewhere WeixinJSBridge never comes (the
      // sandbox's stand-in cashier stands in for it, as WeChat's would).
      if (view.dataset.tradeType === 'JSAPI' && !view.dataset.inWechat && !window.WeixinJSBridge) {
        showNotice('请在微信中打开此页面继续支付');
        return;
      }
      button.disabled = true;
      button.classList.add('weui-btn_loading');
      function ready() {
        button.disabled = false;
        button.classList.remove('weui-btn_loading');
      }
      site.api(view.dataset.payUrl, { method: 'POST' })
        .then(function (r) {
          if (!r.ok) {
            ready();
            if (h5Return) { h5Return.hidden = true; }  // the reason shows on the page, not behind the mask
            if (r.status === 409 || r.status === 410) {
              // Paid, closed or expired meanwhile: show the order as it is now, and why.
              return replaceView().then(function (fresh) {
                var freshNotice = fresh.querySelector('[data-testid=order-notice]');
                freshNotice.textContent = r.body.message;
                freshNotice.hidden = false;
                freshNotice.focus();
              }, function () { showNotice(r.body.message); });
            }
            showNotice(r.body.message);
            return;
          }
          clearTimeout(timer);
          var pay = r.body.pay || { kind: 'jsapi', params: r.body.pay_params };
          if (pay.kind === 'redirect') {
            leaving = true;
            window.location.assign(pay.url);
          } else if (pay.kind === 'qrcode') {
            // The order's page without its hints, which shows the QR code WeChat gave again.
            leaving = true;
            window.location.replace(view.dataset.detailUrl);
          } else {
            site.pay(pay.params, view.dataset.detailUrl, function (url) { window.location.replace(url); });
          }
        })
        .catch(function () {
          ready();
          showNotice(site.NETWORK_ERROR);
        });
    }
    payButtons.forEach(function (button) {
      button.addEventListener('click', function () { payAgain(button); });
    });

    // Back from WeChat's H5 page: 已完成支付 asks the server (which asks WeChat) at once, then
    // keeps asking; the page turns to the result by itself.
    if (h5Return) {
      var paidButton = h5Return.querySelector('[data-action=h5-paid]');
      h5Return.hidden = false;  // its buttons work from now on (the page sends it hidden)
      h5Return.querySelector('[role=alertdialog]').focus();
      paidButton.addEventListener('click', function () {
        h5Return.hidden = true;
        claimedPaid = awaiting = true;
        headline.textContent = '正在确认支付结果';
        poll.textContent = '到账后本页会自动更新。';
        step = 0;
        check(false);
      });
    }

    // A QR code counts down to its end, from the seconds the server gave (not this device's
    // clock, which may be wrong); then the server's page says what next (继续支付, or expired).
    if (qr) {
      var time = qr.querySelector('.pay-qr__time');
      var started = Date.now();
      var total = parseInt(view.dataset.qrSeconds, 10) || 0;
      var tick = function () {
        var left = Math.max(0, total - Math.floor((Date.now() - started) / 1000));
        time.textContent = clock(left);
        if (left > 0) { countdown = setTimeout(tick, 1000); return; }
        qrLive = false;
        qr.classList.add('pay-qr_lapsed');
        qr.querySelector('[data-testid=qr-countdown]').textContent = '二维码已失效';
        if (total > 0) {
          // A moment later, so that the server sees it lapsed too.
          countdown = setTimeout(function () {
            if (!leaving) { replaceView().catch(function () { window.location.reload(); }); }
          }, 1500);
        }
      };
      tick();
    }

    if (awaiting) { poll.textContent = '到账后本页会自动更新。'; } else if (qr) { poll.textContent = '支付完成后本页会自动更新。'; }
    if (view.dataset.result === 'ok') { check(false); } else { schedule(); }
  }

  init(document.getElementById('order-view'), /[?&]result=/.test(window.location.search));
})();
