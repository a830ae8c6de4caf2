from django.urls import path

from wallet import api, paycode, statement

app_name = "wallet"

urlpatterns = [
    # The member's pages (wallet/paycode.py, wallet/statement.py).
    path("wallet/code/", paycode.page, name="code"),
    path("wallet/code.json", paycode.code_json, name="code_json"),
    path("wallet/statement/", statement.statement, name="statement"),
    path("wallet/statement/<int:entry_id>/", statement.entry_detail, name="entry"),
    path("api/mp/statement", statement.miniprogram_statement, name="miniprogram_statement"),
    # The merchant API (wallet/api.py, docs/merchant-api.md).
    path("api/v1/charges", api.create_or_list_charges, name="charges"),
    path("api/v1/charges/<str:number>", api.charge_detail, name="charge"),
    path("api/v1/charges/<str:number>/reversals", api.create_reversal, name="reversals"),
    path("api/v1/members/<str:member_id>", api.member_detail, name="member"),
]
