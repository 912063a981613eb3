from django.apps import AppConfig


class OncallConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "oncall"
    verbose_name = "On call"

    def ready(self):
        from oncall import contributions  # models load only once apps are ready

        contributions.register()
