"""The message templates the sandbox's two apps have added, as a stored-value merchant would have
them (docs/wechat-pay-v2.md#54-模板消息订阅消息): plain data, read by the data migration and by
messages.templates_for (which adds them again to a database emptied after the migration, as a
test's is).

Each keyword's key is its type followed by a number, as WeChat names them (`amount2` is an amount):
the type decides which values a send may carry (messages.KEYWORD_RULES). The ids are fixed so that
a developer can put them in settings once; WeChat's look the same (43 characters of base64url).
"""

from __future__ import annotations

# (template_id, title, [(key, keyword name), ...])
Seed = tuple[str, str, list[tuple[str, str]]]

# 公众号 模板消息 (类目模板): cgi-bin/message/template/send
OFFICIAL_ACCOUNT: list[Seed] = [
    (
        "SO63v3zLx1tR9j1APX7qzqLxOmZjX3mnk79kQnmU10v",
        "充值成功通知",
        [("character_string1", "订单号"), ("amount2", "充值金额"), ("amount3", "当前余额"), ("time4", "充值时间")],
    ),
    (
        "ZbXgA898CP0fepCUTGRB8aSfn3aGZaO7fXaElkKtS1Q",
        "退款成功通知",
        [("character_string1", "退款单号"), ("amount2", "退款金额"), ("amount3", "当前余额"), ("time4", "退款时间")],
    ),
    (
        "VuLpF4dIgJRIefgbdE0n9OOVTUCfR_QE620ZIwlvLPX",
        "退款失败通知",
        [("character_string1", "退款单号"), ("amount2", "退款金额"), ("phrase3", "退款状态"), ("time4", "处理时间")],
    ),
    (
        "c8Cqi5OEERUvmOHEjNnU92JP9qO-9GeT-CX55y-_bQa",
        "消费成功通知",
        [("thing1", "消费门店"), ("amount2", "消费金额"), ("amount3", "当前余额"), ("time4", "消费时间")],
    ),
    (
        "IHac5d53FrqsnBvNQGlwGy_LLl7HVf3Fdtn9z9PohyO",
        "消费撤销通知",
        [("thing1", "消费门店"), ("amount2", "撤销金额"), ("amount3", "当前余额"), ("time4", "撤销时间")],
    ),
    (
        "HNvv8CsFU0FT2OedtHfnHdALAsVGNCY3yH64FidyAMk",
        "余额即将过期提醒",
        [("amount1", "即将过期金额"), ("date2", "过期日期"), ("thing3", "商户名称")],
    ),
]

# 小程序 订阅消息 (一次性订阅): cgi-bin/message/subscribe/send
MINI_PROGRAM: list[Seed] = [
    (
        "dxdOWyWX9yK_cYhHaiw0jwq2sskTgZNFYfnLoYC2XnR",
        "充值成功通知",
        [("character_string1", "订单号"), ("amount2", "充值金额"), ("amount3", "账户余额"), ("time4", "充值时间")],
    ),
    (
        "73spB67dbVazsOADewKEAe4vevZWpZHoKnWsNQFXZQq",
        "退款成功通知",
        [("character_string1", "退款单号"), ("amount2", "退款金额"), ("amount3", "账户余额"), ("time4", "退款时间")],
    ),
    (
        "wT5msYGsWMxXvUOKujCgdTx2HuyA4WPOgmnSE9ddDER",
        "退款失败通知",
        [("character_string1", "退款单号"), ("amount2", "退款金额"), ("thing3", "失败原因"), ("time4", "处理时间")],
    ),
    (
        "sAxUMF9QTqMnD3Mm-ZMX3dvhLSYaufURuQausYOYHm-",
        "消费成功通知",
        [("thing1", "消费门店"), ("amount2", "消费金额"), ("amount3", "账户余额"), ("time4", "消费时间")],
    ),
    (
        "kpNJs5H6RxrwkR53IlDFn8jYdSZimFDkjD5CoTO0D3I",
        "消费撤销通知",
        [("thing1", "消费门店"), ("amount2", "撤销金额"), ("amount3", "账户余额"), ("time4", "撤销时间")],
    ),
    (
        "YCDVs2DI58m6RNFOPGddYoStG-u6ebXXsd_2iG03e7K",
        "余额即将过期提醒",
        [("amount1", "即将过期金额"), ("date2", "过期日期"), ("thing3", "温馨提示")],
    ),
]
