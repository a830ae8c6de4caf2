/* The order's page: while pending, ask the server for its status at growing intervals (then
 * stop and say so); 刷新 asks now; 继续支付 pays the same order again; 完成 closes the page
 * inside WeChat. When the status changes (or WeChat turns out to have taken the money: the
 * payment is being confirmed), the server's rendering of the page replaces ours. The line
 * under the status says one thing at a time: still checking, or stopped. */
(function () {
  'use strict';
  var site = window.WxSite;
  // Seconds between checks: quick at first (the notify usually comes within seconds), then
  // less often; about two and a half minutes in all.
  var DELAYS = [1, 2, 3, 5, 8, 13, 21, 34, 55];

  function init(view, announce) {
    if (!view) { return; }
    var headline = view.querySelector('#order-result');
    var notice = view.querySelector('[data-testid=order-notice]');
    var poll = view.querySelector('[data-testid=order-poll]');
    var payButton = view.querySelector('[data-action=pay]');
    var refreshButton = view.querySelector('[data-action=refresh]');
    var doneLink = view.querySelector('[data-action=done]');
    var timer = null;
    var step = 0;
    var leaving = false;
    var confirming = view.dataset.confirming === '1';
    // Waiting for a payment to land (WeChat's client said ok, or WeChat took the money): say
    // that the page follows it, for as long as it does.
    var awaiting = confirming || view.dataset.result === 'ok';

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
      site.api(view.dataset.statusUrl + (view.dataset.result === 'ok' ? '?paid=1' : ''))
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

    if (payButton) {
      payButton.addEventListener('click', function () {
        if (payButton.disabled) { return; }
        showNotice('');
        payButton.disabled = true;
        payButton.classList.add('weui-btn_loading');
        function ready() {
          payButton.disabled = false;
          payButton.classList.remove('weui-btn_loading');
        }
        site.api(view.dataset.payUrl, { method: 'POST' })
          .then(function (r) {
            if (!r.ok) {
              ready();
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
            site.pay(r.body.pay_params, view.dataset.detailUrl, function (url) { window.location.replace(url); });
          })
          .catch(function () {
            ready();
            showNotice(site.NETWORK_ERROR);
          });
      });
    }

    if (awaiting) { poll.textContent = '到账后本页会自动更新。'; }
    if (view.dataset.result === 'ok') { check(false); } else { schedule(); }
  }

  init(document.getElementById('order-view'), /[?&]result=/.test(window.location.search));
})();
