"""Let Responders and Managers read the Escalations list (where each incident's escalation
stands); only the engine changes escalations (docs/escalation.md#where-to-see-it)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CODENAMES = ["view_escalation"]


def grant(apps, schema_editor):
    # The model is new in 0006: its permissions exist only once created here (Django
    # creates them after all migrations otherwise), as 0002_roles does.
    app_config = apps.get_app_config("oncall")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    permissions = Permission.objects.filter(content_type__app_label="oncall",
                                            codename__in=CODENAMES)
    for group in Group.objects.filter(name__in=["Responder", "Manager"]):
        group.permissions.add(*permissions)


class Migration(migrations.Migration):
    dependencies = [("oncall", "0006_escalation")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
