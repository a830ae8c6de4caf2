from __future__ import annotations

from django import forms
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm

from accounts.models import User
from common import support

PASSWORD_MAX_LENGTH = 128


class RegisterForm(UserCreationForm):
    """Username and password, checked by Django's password validators."""

    class Meta:
        model = User
        fields = ("username",)
        help_texts = {"username": "不超过 150 个字符，可用字母、数字和 @ . + - _"}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["username"].widget.attrs.update(placeholder="请输入用户名")
        self.fields["password1"].widget.attrs.update(placeholder="至少 8 位，不能全是数字")
        self.fields["password2"].widget.attrs.update(placeholder="再输入一次密码")
        self.fields["password1"].help_text = ""
        for name in ("password1", "password2"):
            self.fields[name].widget.attrs["maxlength"] = PASSWORD_MAX_LENGTH

    def clean_password1(self):
        password = self.cleaned_data.get("password1", "")
        if len(password) > PASSWORD_MAX_LENGTH:
            raise forms.ValidationError(f"密码不能超过 {PASSWORD_MAX_LENGTH} 个字符。", code="password_too_long")
        return password


class LoginForm(AuthenticationForm):
    # Django's own text ("请输入一个正确的 用户名 和密码. 注意他们都是区分大小写的.") reads like a
    # machine; the same text for a wrong password and an unknown name, so neither is revealed.
    error_messages = {
        "invalid_login": "用户名或密码不对。请检查是否输入了正确的用户名和密码，字母区分大小写。",
        "inactive": "这个账户已停用。",
    }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # How to reach support, as configured now (not when this module was imported).
        self.error_messages = {**self.error_messages, "inactive": self.error_messages["inactive"] + support.ask("如有疑问，")}
        self.fields["username"].widget.attrs.update(placeholder="请输入用户名")
        self.fields["password"].widget.attrs.update(placeholder="请输入密码")
