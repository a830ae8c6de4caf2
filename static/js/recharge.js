/* The recharge page: amount -> server prepay -> getBrandWCPayRequest -> ask the server.
 * The page's "ok" is never proof of payment: only the server's status says paid. */
(function () {
  'use strict';
  var form = document.getElementById('recharge-form');
  if (!form) { return; }
  var input = form.querySelector('#amount');
  var button = form.querySelector('#pay-button');
  var error = form.querySelector('.recharge-error');
  var csrf = form.querySelector('[name=csrfmiddlewaretoken]').value;
  var busy = false;

  form.querySelectorAll('.preset').forEach(function (preset) {
    preset.addEventListener('click', function () {
      form.querySelectorAll('.preset').forEach(function (p) { p.classList.remove('preset_active'); });
      preset.classList.add('preset_active');
      input.value = preset.dataset.amount;
      showError('');
    });
  });
  input.addEventListener('input', function () {
    form.querySelectorAll('.preset').forEach(function (p) {
      p.classList.toggle('preset_active', p.dataset.amount === input.value);
    });
  });

  function showError(text) {
    error.textContent = text;
    error.hidden = !text;
  }

  function setBusy(value) {
    busy = value;
    button.disabled = value;
    button.classList.toggle('weui-btn_loading', value);
    button.textContent = value ? '正在支付…' : '立即充值';
  }

  function showResult(kind, title, desc) {
    var icons = { paid: 'weui-icon-success', processing: 'weui-icon-waiting', failed: 'weui-icon-warn' };
    document.getElementById('recharge-view').hidden = true;
    var result = document.getElementById('recharge-result');
    result.hidden = false;
    result.dataset.state = kind;
    document.getElementById('result-icon').className = icons[kind] + ' weui-icon_msg';
    document.getElementById('result-title').textContent = title;
    document.getElementById('result-desc').textContent = desc;
  }

  function formatFen(fen) { return '¥' + (fen / 100).toFixed(2); }

  function updateBalance(fen) {
    document.querySelectorAll('[data-testid=balance], [data-testid=header-balance]').forEach(function (el) {
      el.textContent = formatFen(fen);
    });
  }

  function checkStatus(outTradeNo, triesLeft) {
    var url = form.dataset.statusUrl.replace('OUT_TRADE_NO', encodeURIComponent(outTradeNo));
    fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (body.status === 'paid' || body.status === 'refunded') {
          updateBalance(body.balance_fen);
          showResult('paid', '充值成功', formatFen(body.amount_fen) + ' 已计入余额，当前余额 ' + formatFen(body.balance_fen));
        } else if (body.status === 'closed') {
          showResult('failed', '支付失败', '订单已关闭，未扣款。请重新充值。');
        } else if (triesLeft > 0) {
          setTimeout(function () { checkStatus(outTradeNo, triesLeft - 1); }, 1000);
        } else {
          showResult('processing', '支付处理中', '微信支付正在确认，到账后余额会自动更新。订单号 ' + outTradeNo);
        }
      })
      .catch(function () {
        if (triesLeft > 0) { setTimeout(function () { checkStatus(outTradeNo, triesLeft - 1); }, 1000); }
        else { showResult('processing', '支付处理中', '暂时无法确认结果，请稍后在充值记录中查看。'); }
      });
  }

  function withBridge(fn) {
    if (typeof window.WeixinJSBridge !== 'undefined') { fn(); return; }
    document.addEventListener('WeixinJSBridgeReady', fn, { once: true });
  }

  form.addEventListener('submit', function (event) {
    event.preventDefault();
    if (busy) { return; }
    var amount = input.value.trim();
    if (!/^[0-9]{1,9}(\.[0-9]{1,2})?$/.test(amount)) {
      showError('请输入正确的金额（最多两位小数）');
      return;
    }
    showError('');
    setBusy(true);
    fetch(form.dataset.prepayUrl, {
      method: 'POST', credentials: 'same-origin',
      headers: { 'Content-Type': 'application/json', 'X-CSRFToken': csrf, Accept: 'application/json' },
      body: JSON.stringify({ amount: amount })
    })
      .then(function (r) { return r.json().then(function (body) { return { ok: r.ok, body: body }; }); })
      .then(function (r) {
        if (!r.ok) {
          if (r.body.error === 'openid_required' && r.body.bind_url) { window.location.href = r.body.bind_url; return; }
          showError(r.body.message || '下单失败，请稍后再试');
          setBusy(false);
          return;
        }
        var outTradeNo = r.body.out_trade_no;
        withBridge(function () {
          window.WeixinJSBridge.invoke('getBrandWCPayRequest', r.body.pay_params, function (res) {
            var msg = (res && res.err_msg) || '';
            if (msg === 'get_brand_wcpay_request:ok') {
              button.textContent = '正在确认…';
              checkStatus(outTradeNo, 5);
            } else if (msg === 'get_brand_wcpay_request:cancel') {
              showError('已取消支付');
              setBusy(false);
            } else {
              showError('支付失败' + (res && res.err_desc ? '：' + res.err_desc : '，请重试'));
              setBusy(false);
            }
          });
        });
      })
      .catch(function () {
        showError('网络异常，请稍后再试');
        setBusy(false);
      });
  });
})();
