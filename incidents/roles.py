from django.apps import apps as global_apps

ADMINISTRATOR = "Administrator"


def grant_administrators_every_permission(sender, apps=global_apps, using="default",
                                          **kwargs):
    """post_migrate: Administrators hold every permission, including those of models that
    later migrations add. Django creates each app's permissions in an earlier post_migrate
    receiver, so by the time the last app is migrated the group has them all. (``flush``
    sends the signal without ``apps``: the installed apps then.)"""
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.using(using).filter(name=ADMINISTRATOR).first()
    if group is not None:
        group.permissions.set(Permission.objects.using(using).all())
