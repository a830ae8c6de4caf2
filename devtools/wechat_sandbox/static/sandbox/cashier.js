/* Sandbox cashier: stands in for WeChat's WeixinJSBridge outside WeChat (sandbox only).
 * invoke('getBrandWCPayRequest', params, cb) shows a sheet laid out as WeChat's payment sheet
 * (close, amount, payee, 支付 full width, then 取消 and 模拟支付失败); 支付 posts the signed params to
 * the sandbox, which checks paySign as WeChat's client does, and that this browser's sandbox
 * WeChat (its 网页授权 cookie, sent with the same-origin fetch) is the one the order was for.
 * Its styles are cashier.css, beside this script, so that any page of the site can show it. */
(function () {
  if (window.WeixinJSBridge) { return; }
  var script = document.currentScript;
  var urls = { prepay: script.dataset.prepayUrl, pay: script.dataset.payUrl };

  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text) { node.textContent = text; }
    return node;
  }

  function button(cls, text) {
    var node = el('button', cls, text);
    node.type = 'button';
    return node;
  }

  // The sheet's styles sit beside this script (a stylesheet of the site's own, as the
  // Content-Security-Policy asks), loaded once when the script runs; the sheet opens once
  // they are in (or have failed, or 1.5 s have passed), never unstyled on a working server.
  var stylesReady = new Promise(function (resolve) {
    var link = document.createElement('link');
    link.rel = 'stylesheet';
    link.href = script.src.replace(/cashier(\.[0-9a-f]+)?\.js(\?.*)?$/, 'cashier.css');
    link.onload = link.onerror = function () { resolve(); };
    document.head.appendChild(link);
    setTimeout(resolve, 1500);  // a slow server must not keep the sheet from opening at all
  });

  function yuan(fen) { return (fen / 100).toFixed(2); }

  function row(list, label) {
    var item = el('div', 'sbx-sheet__row');
    var value = el('dd', '', '…');
    item.appendChild(el('dt', '', label));
    item.appendChild(value);
    list.appendChild(item);
    return value;
  }

  function openSheet(params, callback) {
    var root = el('div', 'sbx-sheet');
    root.setAttribute('role', 'dialog');
    root.setAttribute('aria-modal', 'true');
    root.setAttribute('aria-label', '微信支付');
    var mask = el('div', 'sbx-sheet__mask');
    var panel = el('div', 'sbx-sheet__panel');

    var hd = el('div', 'sbx-sheet__hd');
    var close = button('sbx-sheet__close');
    close.setAttribute('aria-label', '关闭');
    close.appendChild(el('i', 'weui-icon-close-thin'));
    hd.appendChild(close);
    hd.appendChild(el('strong', 'sbx-sheet__title', '微信支付'));

    var bd = el('div', 'sbx-sheet__bd');
    var merchant = el('div', 'sbx-sheet__merchant', '…');
    var amount = el('div', 'sbx-sheet__amount');
    amount.setAttribute('data-testid', 'cashier-amount');
    bd.appendChild(merchant);
    bd.appendChild(amount);

    var rows = el('dl', 'sbx-sheet__rows');
    var goods = row(rows, '商品');
    row(rows, '付款方式').textContent = '零钱（沙箱）';
    // who pays: this browser's sandbox WeChat (from the sandbox's 网页授权); the sandbox refuses
    // anyone but the WeChat the order was placed for, as WeChat does
    var payer = row(rows, '付款微信');
    var error = el('div', 'sbx-sheet__error');
    error.setAttribute('role', 'alert');

    var ft = el('div', 'sbx-sheet__ft');
    var payBtn = button('weui-btn weui-btn_primary', '支付');
    var secondary = el('div', 'sbx-sheet__secondary');
    var cancelBtn = button('weui-btn weui-btn_default', '取消');
    var failBtn = button('weui-btn weui-btn_default', '模拟支付失败');
    secondary.appendChild(cancelBtn);
    secondary.appendChild(failBtn);
    ft.appendChild(payBtn);
    ft.appendChild(secondary);
    ft.appendChild(el('div', 'sbx-sheet__note', '沙箱收银台：不会产生真实扣款'));

    panel.appendChild(hd); panel.appendChild(bd); panel.appendChild(rows); panel.appendChild(error); panel.appendChild(ft);
    root.appendChild(mask); root.appendChild(panel);
    document.body.appendChild(root);
    payBtn.focus();

    var done = false;
    function finish(res) {
      if (done) { return; }
      done = true;
      root.remove();
      callback(res);
    }

    fetch(urls.prepay + '?package=' + encodeURIComponent(params['package'] || ''))
      .then(function (r) { return r.json().then(function (b) { return { ok: r.ok, body: b }; }); })
      .then(function (r) {
        if (!r.ok) { error.textContent = r.body.error || '订单不存在'; payBtn.disabled = failBtn.disabled = true; return; }
        merchant.textContent = r.body.merchant;
        amount.textContent = '';
        amount.appendChild(el('small', '', '¥'));
        amount.appendChild(document.createTextNode(yuan(r.body.total_fee)));
        goods.textContent = r.body.body;
        if (r.body.payer) { payer.textContent = r.body.payer; } else { payer.parentNode.remove(); }
      })
      .catch(function () { error.textContent = '网络错误，请重试'; });

    function submit(outcome) {
      payBtn.disabled = failBtn.disabled = true;
      (outcome === 'fail' ? failBtn : payBtn).classList.add('weui-btn_loading');
      var body = Object.assign({}, params, { outcome: outcome });
      fetch(urls.pay, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
        .then(function (r) { return r.json(); })
        .then(finish)
        .catch(function () { finish({ err_msg: 'get_brand_wcpay_request:fail', err_desc: '网络错误' }); });
    }
    function cancel() { finish({ err_msg: 'get_brand_wcpay_request:cancel' }); }
    payBtn.addEventListener('click', function () { submit('pay'); });
    failBtn.addEventListener('click', function () { submit('fail'); });
    cancelBtn.addEventListener('click', cancel);
    close.addEventListener('click', cancel);
    mask.addEventListener('click', cancel);
    root.addEventListener('keydown', function (event) { if (event.key === 'Escape') { cancel(); } });
  }

  window.WeixinJSBridge = {
    sandbox: true,
    invoke: function (name, params, callback) {
      callback = callback || function () {};
      if (name !== 'getBrandWCPayRequest') {
        callback({ err_msg: name + ':fail', err_desc: '沙箱只支持 getBrandWCPayRequest' });
        return;
      }
      stylesReady.then(function () { openSheet(params || {}, callback); });
    },
    on: function () {}
  };

  function ready() { document.dispatchEvent(new Event('WeixinJSBridgeReady')); }
  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', ready); } else { setTimeout(ready, 0); }
})();
