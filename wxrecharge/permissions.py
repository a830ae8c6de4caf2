"""Chinese names for Django's default permissions (add, change, delete, view).

Django creates them after each migrate with English names ("Can add 用户"), which the admin
shows wherever a role or an operator is given permissions. After every migrate (and every
test database built without migrations) this names them in Chinese ("可以添加 用户") for every
model, the permissions Django has just made included, and follows a model's verbose_name when
it changes. Permissions a model declares itself (Meta.permissions) keep their own names.
"""

from __future__ import annotations

from django.apps import apps as global_apps
from django.conf import settings
from django.contrib.auth import get_permission_codename
from django.db import DEFAULT_DB_ALIAS, router
from django.utils import translation
from django.utils.translation import gettext

ACTIONS = {"add": "可以添加", "change": "可以修改", "delete": "可以删除", "view": "可以查看"}


def default_permission_name(action: str, verbose_name: str) -> str:
    return f"{ACTIONS[action]} {verbose_name}"


def name_default_permissions(app_config, using=DEFAULT_DB_ALIAS, apps=global_apps, **kwargs) -> None:
    """post_migrate: rename the app's default permissions that do not have their Chinese name.

    Connected after django.contrib.auth's create_permissions (wxrecharge comes after auth in
    INSTALLED_APPS), so the permissions it adds for `app_config` in the same migrate exist by
    now. The names are the models' verbose names in the site's language: Django's own models
    and django-axes' have English ones, translated (axes' in wxrecharge/locale), and so does
    django-otp without marking them for translation: they are looked up in the catalog too.
    """
    if not app_config.models_module:
        return
    try:
        Permission = apps.get_model("auth", "Permission")
        ContentType = apps.get_model("contenttypes", "ContentType")
    except LookupError:
        return
    if not router.allow_migrate_model(using, Permission):
        return
    models = list(app_config.get_models())
    ctypes = ContentType.objects.db_manager(using).get_for_models(*models, for_concrete_models=False)
    with translation.override(settings.LANGUAGE_CODE):
        wanted = {
            (ctypes[model].pk, get_permission_codename(action, model._meta)): default_permission_name(
                action, gettext(str(model._meta.verbose_name))
            )
            for model in models
            for action in model._meta.default_permissions
            if action in ACTIONS
        }
    existing = Permission.objects.using(using).filter(content_type__in={ct.pk for ct in ctypes.values()})
    for pk, content_type_id, codename, name in existing.values_list("pk", "content_type_id", "codename", "name"):
        new_name = wanted.get((content_type_id, codename))
        if new_name is not None and new_name != name:
            Permission.objects.using(using).filter(pk=pk).update(name=new_name)
