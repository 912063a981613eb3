"""Let Responders and Managers page a person about an incident by hand (add a responder):
the ``add_page`` permission (docs/on-call.md#paging-someone-by-hand)."""

from django.db import migrations

CODENAMES = ["add_page"]


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = Permission.objects.filter(content_type__app_label="oncall",
                                            codename__in=CODENAMES)
    for group in Group.objects.filter(name__in=["Responder", "Manager"]):
        group.permissions.add(*permissions)


class Migration(migrations.Migration):
    dependencies = [("oncall", "0002_roles")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
