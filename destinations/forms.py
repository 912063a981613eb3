"""The destination form: common fields plus one form field per config key of its kind."""

from django import forms
from django.core.exceptions import ValidationError

from destinations.kinds import kind_for
from destinations.kinds.base import BOOL, CHOICE, EMAILS, URL, Field, clean_config
from destinations.models import Destination

PREFIX = "config_"


def form_field(spec: Field, current: dict) -> forms.Field:
    options = {"required": spec.required, "help_text": spec.help, "label": spec.name}
    if spec.secret:
        if current.get(spec.name):
            # Never rendered back: an empty field on save keeps what is stored.
            options["required"] = False
            options["help_text"] = "Set. Leave blank to keep the current value."
        return forms.CharField(widget=forms.PasswordInput(render_value=False), **options)
    if spec.type == URL:
        return forms.URLField(assume_scheme="https", initial=spec.default, **options)
    if spec.type == EMAILS:
        return forms.CharField(widget=forms.TextInput(attrs={"size": 60}), **options)
    if spec.type == BOOL:
        return forms.BooleanField(required=False, help_text=spec.help, label=spec.name)
    if spec.type == CHOICE:
        return forms.ChoiceField(choices=[(c, c) for c in spec.choices], **options)
    return forms.CharField(initial=spec.default, widget=forms.TextInput(attrs={"size": 60}),
                           **options)


class DestinationForm(forms.ModelForm):
    kind = None  # set on the per-kind subclass

    class Meta:
        model = Destination
        fields = ["name", "send_drills"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        current = self.instance.config if self.instance.pk else {}
        for spec in self.specs():
            if spec.secret:
                continue
            value = current.get(spec.name)
            if value is not None:
                self.initial[PREFIX + spec.name] = (
                    ", ".join(value) if spec.type == EMAILS else value
                )

    @classmethod
    def specs(cls) -> list[Field]:
        return kind_for(cls.kind).FIELDS

    def clean(self):
        cleaned = super().clean()
        raw = {spec.name: cleaned.get(PREFIX + spec.name) for spec in self.specs()}
        current = self.instance.config if self.instance.pk else {}
        try:
            self.instance.config = clean_config(self.specs(), raw, current=current)
        except ValidationError as exc:
            for key, errors in exc.message_dict.items():
                field = PREFIX + key if PREFIX + key in self.fields else None
                self.add_error(field, errors)
        self.instance.kind = self.kind
        return cleaned


def form_for_kind(kind: str, current: dict) -> type[DestinationForm]:
    declared = {
        PREFIX + spec.name: form_field(spec, current) for spec in kind_for(kind).FIELDS
    }
    return type(f"{kind.title()}DestinationForm", (DestinationForm,), {"kind": kind, **declared})
