"""The admin's forms for an integration's mapping and its alert rules: JSON text areas
that show what is stored indented, and the same validation as the REST API
(docs/mapping-and-rules.md)."""

import json

from django import forms
from django.core.exceptions import ValidationError

from integrations import rules
from integrations.mapping import validate_mapping
from integrations.models import AlertRule, Integration
from tocsin import strictjson

JSON_AREA = {"class": "vLargeTextField tocsin-json", "rows": 8, "spellcheck": "false"}


def pretty(value) -> str:
    return "" if value is None else json.dumps(value, indent=2, ensure_ascii=False)


class PrettyJSONField(forms.JSONField):
    """A JSON textarea that shows what is stored indented, one key a line. Read strictly
    (tocsin.strictjson), as the API reads the same fields: with plain json.loads deep
    nesting raised RecursionError (a 500) and NaN or a lone surrogate got through."""

    def to_python(self, value):
        if self.disabled or value in self.empty_values or not isinstance(value, str):
            return super().to_python(value)
        try:
            return strictjson.loads(value)
        except ValueError as exc:  # JSONProblem included
            raise ValidationError(f"Not valid JSON ({exc}).", code="invalid") from None

    def bound_data(self, data, initial):
        if self.disabled or data is None:
            return super().bound_data(data, initial)
        try:
            return strictjson.loads(data)
        except ValueError:
            return forms.fields.InvalidJSONInput(data)

    def prepare_value(self, value):
        if isinstance(value, forms.fields.InvalidJSONInput):
            return value
        return pretty(value)


class IntegrationForm(forms.ModelForm):
    mapping = PrettyJSONField(
        required=False, widget=forms.Textarea(attrs={**JSON_AREA, "rows": 14}),
        help_text='Empty: off. {"direct": {FIELD: SOURCE}, "conditional": [{"if": [CONDITION, '
        '…], "then": {FIELD: SOURCE}}]}; FIELD one of message, summary, entity_id, alert_type, '
        'urgency, priority; SOURCE {"path": "a.0.b"} or {"value": …}. See '
        "docs/mapping-and-rules.md.",
    )

    class Meta:
        model = Integration
        # The admin's fieldsets choose the other fields.
        fields = ["mapping"]

    def clean_mapping(self):
        value = self.cleaned_data.get("mapping")
        errors = validate_mapping(value)
        if errors:
            raise ValidationError(errors)
        return value


class AlertRuleForm(forms.ModelForm):
    conditions = PrettyJSONField(
        required=False, widget=forms.Textarea(attrs=JSON_AREA),
        help_text='All must hold; empty matches every alert. {"path": "a.b", "op": …, '
        '"value": …} or {"field": "alert_type", "op": …, "value": …}; also time_of_day, '
        "day_of_week, seconds_since_last_incident, payload_keys.",
    )
    actions = PrettyJSONField(
        widget=forms.Textarea(attrs={**JSON_AREA, "rows": 5}),
        help_text='[{"type": "suppress"}, {"type": "set_alert_type", "value": "critical"}, '
        '{"type": "add_note", "value": "…"}, …]',
    )

    class Meta:
        model = AlertRule
        fields = ["name", "position", "enabled", "conditions", "actions"]

    def clean_conditions(self):
        value = self.cleaned_data.get("conditions")
        value = [] if value is None else value
        errors = rules.validate_conditions(value)
        if errors:
            raise ValidationError(errors)
        return value

    def clean_actions(self):
        errors = rules.validate_actions(self.cleaned_data.get("actions"))
        if errors:
            raise ValidationError(errors)
        return self.cleaned_data["actions"]
