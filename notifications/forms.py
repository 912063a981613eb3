import re

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from notifications.models import SETTINGS_TYPES, NotificationSettings


def email_list(value) -> list[str]:
    """Addresses from a list or a comma/space/newline separated string, validated."""
    items = value if isinstance(value, list) else re.split(r"[,\s;]+", value or "")
    items = [str(item).strip() for item in items if str(item).strip()]
    bad = []
    for item in items:
        try:
            validate_email(item)
        except ValidationError:
            bad.append(item)
    if bad:
        raise ValidationError(f"Not email addresses: {', '.join(bad)}")
    return list(dict.fromkeys(items))


class RecipientsField(forms.CharField):
    widget = forms.Textarea(attrs={"rows": 2, "cols": 60})

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        return email_list(super().to_python(value))


class NotificationSettingsForm(forms.ModelForm):
    default_recipients = RecipientsField(required=False, label="Default recipients",
                                         help_text="Separated by commas.")
    incidents_recipients = RecipientsField(required=False, label="Incidents recipients")
    escalations_recipients = RecipientsField(required=False, label="Escalations recipients")
    platform_actions_recipients = RecipientsField(required=False,
                                                  label="Platform Actions recipients")
    account_notices_recipients = RecipientsField(required=False,
                                                 label="Account Notices recipients")

    class Meta:
        model = NotificationSettings
        fields = [
            "default_recipients",
            *[f"{kind.value}_{part}" for kind in SETTINGS_TYPES
              for part in ("override", "recipients")],
            "send_resolved",
        ]
        labels = {"send_resolved": "Send resolved notifications"}

    def clean(self):
        cleaned = super().clean()
        for kind in SETTINGS_TYPES:
            if cleaned.get(f"{kind.value}_override") and not cleaned.get(
                    f"{kind.value}_recipients"):
                self.add_error(f"{kind.value}_recipients",
                               "Give recipients, or turn the override off to use the default.")
        return cleaned
