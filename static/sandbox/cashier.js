/* Sandbox cashier: stands in for WeChat's WeixinJSBridge outside WeChat (sandbox only).
 * invoke('getBrandWCPayRequest', params, cb) shows a WeChat-like payment sheet; 支付 posts
 * the signed params to the sandbox, which checks paySign as WeChat's client does. */
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

  function yuan(fen) { return (fen / 100).toFixed(2); }

  function openSheet(params, callback) {
    var root = el('div', 'sandbox-cashier');
    root.setAttribute('role', 'dialog');
    root.setAttribute('aria-label', '微信支付');
    var mask = el('div', 'weui-mask');
    var dialog = el('div', 'weui-half-screen-dialog sandbox-cashier__dialog');
    var hd = el('div', 'weui-half-screen-dialog__hd');
    var close = el('button', 'weui-btn_reset sandbox-cashier__close', '取消');
    close.type = 'button';
    hd.appendChild(close);
    hd.appendChild(el('strong', 'weui-half-screen-dialog__title', '微信支付'));
    var bd = el('div', 'weui-half-screen-dialog__bd sandbox-cashier__bd');
    var merchant = el('div', 'sandbox-cashier__merchant', '…');
    var amount = el('div', 'sandbox-cashier__amount', '');
    var note = el('div', 'sandbox-cashier__note', '沙箱收银台：不会产生真实扣款');
    var error = el('div', 'weui-cells__tips weui-cells__tips_warn sandbox-cashier__error', '');
    bd.appendChild(merchant); bd.appendChild(amount); bd.appendChild(note); bd.appendChild(error);
    var ft = el('div', 'weui-half-screen-dialog__ft');
    var btnArea = el('div', 'weui-half-screen-dialog__btn-area');
    var payBtn = el('button', 'weui-btn weui-btn_primary', '支付');
    var failBtn = el('button', 'weui-btn weui-btn_default', '模拟支付失败');
    payBtn.type = failBtn.type = 'button';
    btnArea.appendChild(payBtn); btnArea.appendChild(failBtn); ft.appendChild(btnArea);
    dialog.appendChild(hd); dialog.appendChild(bd); dialog.appendChild(ft);
    root.appendChild(mask); root.appendChild(dialog);
    document.body.appendChild(root);

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
        if (!r.ok) { error.textContent = r.body.error || '订单不存在'; payBtn.disabled = true; return; }
        merchant.textContent = r.body.merchant + ' · ' + r.body.body;
        amount.textContent = '¥' + yuan(r.body.total_fee);
      });

    function submit(outcome) {
      payBtn.disabled = failBtn.disabled = true;
      payBtn.classList.add('weui-btn_loading');
      var body = Object.assign({}, params, { outcome: outcome });
      fetch(urls.pay, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
        .then(function (r) { return r.json(); })
        .then(finish)
        .catch(function () { finish({ err_msg: 'get_brand_wcpay_request:fail', err_desc: '网络错误' }); });
    }
    payBtn.addEventListener('click', function () { submit('pay'); });
    failBtn.addEventListener('click', function () { submit('fail'); });
    close.addEventListener('click', function () { finish({ err_msg: 'get_brand_wcpay_request:cancel' }); });
    mask.addEventListener('click', function () { finish({ err_msg: 'get_brand_wcpay_request:cancel' }); });
  }

  window.WeixinJSBridge = {
    sandbox: true,
    invoke: function (name, params, callback) {
      callback = callback || function () {};
      if (name !== 'getBrandWCPayRequest') {
        callback({ err_msg: name + ':fail', err_desc: '沙箱只支持 getBrandWCPayRequest' });
        return;
      }
      openSheet(params || {}, callback);
    },
    on: function () {}
  };

  function ready() { document.dispatchEvent(new Event('WeixinJSBridgeReady')); }
  if (document.readyState === 'loading') { document.addEventListener('DOMContentLoaded', ready); } else { setTimeout(ready, 0); }
})();
