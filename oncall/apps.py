from django.apps import AppConfig


class OncallConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "oncall"
    verbose_name = "On call"

    def ready(self):
        # Editing a rotation records its previous definition (oncall/rotation_history.py).
        from oncall import rotation_history  # noqa: F401
