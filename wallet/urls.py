from django.urls import path

from wallet import api

app_name = "wallet"

urlpatterns = [
    path("api/v1/charges", api.create_or_list_charges, name="charges"),
    path("api/v1/charges/<str:number>", api.charge_detail, name="charge"),
    path("api/v1/charges/<str:number>/reversals", api.create_reversal, name="reversals"),
    path("api/v1/members/<str:member_id>", api.member_detail, name="member"),
]
