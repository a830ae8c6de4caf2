/* Shared by the pages (loaded on every page, before the page's own script): JSON calls
 * that explain every failure in Chinese, WeChat's bridge, and where a payment lands.
 * No inline script anywhere: the Content-Security-Policy allows only files from this site. */
(function () {
  'use strict';

  // iOS shows :active styles only when the page listens for touches (this replaces
  // <body ontouchstart>, an inline handler the policy forbids).
  document.addEventListener('touchstart', function () {}, { passive: true });

  function csrfToken() {
    var field = document.querySelector('[name=csrfmiddlewaretoken]');
    return field ? field.value : '';
  }

  function fallbackMessage(status) {
    if (status >= 500) { return '系统繁忙，请稍后再试（' + status + '）'; }
    return '请求未成功，请刷新后重试（' + status + '）';
  }

  /* fetch a JSON endpoint: resolves {ok, status, body}, with body.message always set when
   * !ok; rejects only when the network failed. A session that expired sends the person to
   * sign in (and back to this page) and never resolves, as the page is being left. */
  function api(url, options) {
    options = options || {};
    var method = options.method || 'GET';
    var headers = { Accept: 'application/json' };
    var init = { method: method, credentials: 'same-origin', headers: headers };
    if (method !== 'GET') { headers['X-CSRFToken'] = csrfToken(); }
    if (options.json !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(options.json);
    }
    return fetch(url, init).then(function (r) {
      return r.json().catch(function () { return {}; }).then(function (body) {
        if (r.status === 401 && body.login_url) {
          window.location.assign(body.login_url);
          return new Promise(function () {});
        }
        if (!r.ok && !body.message) { body.message = fallbackMessage(r.status); }
        return { ok: r.ok, status: r.status, body: body };
      });
    });
  }

  function withBridge(fn) {
    if (typeof window.WeixinJSBridge !== 'undefined') { fn(); return; }
    document.addEventListener('WeixinJSBridgeReady', fn, { once: true });
  }

  var ERROR_KEY = 'wxrecharge:pay-error:';

  /* Open WeChat's payment sheet, then land on the order's page with how it ended
   * (?result=ok|cancel|fail): the page asks the server, as "ok" is no proof of payment,
   * and a reload says the same again. WeChat's own words for a failure (err_desc) travel
   * in this tab's sessionStorage rather than the URL, so no link can put words on our page. */
  function pay(payParams, orderUrl, navigate) {
    withBridge(function () {
      window.WeixinJSBridge.invoke('getBrandWCPayRequest', payParams, function (res) {
        var msg = (res && res.err_msg) || '';
        var result = msg === 'get_brand_wcpay_request:ok' ? 'ok'
          : msg === 'get_brand_wcpay_request:cancel' ? 'cancel' : 'fail';
        try {
          if (result === 'fail' && res && res.err_desc) {
            window.sessionStorage.setItem(ERROR_KEY + orderUrl, String(res.err_desc));
          } else {
            window.sessionStorage.removeItem(ERROR_KEY + orderUrl);
          }
        } catch (e) { /* storage off (private mode): the page shows its own words */ }
        navigate(orderUrl + '?result=' + result);
      });
    });
  }

  function payError(orderUrl) {
    try { return window.sessionStorage.getItem(ERROR_KEY + orderUrl) || ''; } catch (e) { return ''; }
  }

  function formatFen(fen) { return '¥' + (fen / 100).toFixed(2); }

  function updateBalance(fen) {
    document.querySelectorAll('[data-testid=balance], [data-testid=header-balance]').forEach(function (el) {
      el.textContent = formatFen(fen);
    });
  }

  window.WxSite = {
    api: api, pay: pay, payError: payError, formatFen: formatFen, updateBalance: updateBalance,
    NETWORK_ERROR: '网络异常，请检查网络后重试'
  };
})();
