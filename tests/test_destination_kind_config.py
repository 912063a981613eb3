"""Each kind's config schema through clean_config and public_config: what is required, what
is refused, what is filled in, and that secrets never come back out."""

import pytest
from django.core.exceptions import ValidationError

from destinations.kinds import KINDS
from destinations.kinds.base import SECRET_URL, URL, clean_config, public_config
from destinations.models import Destination

# A config every kind accepts, with every optional key set, so tests can take keys away.
FULL = {
    "email": {"recipients": "a@example.com, b@example.com", "subject_template": "{state}"},
    "slack": {"webhook_url": "https://hooks.slack.com/services/T0/B0/x", "username": "Tocsin"},
    "mattermost": {"webhook_url": "https://chat.example.com/hooks/abc", "channel": "ops",
                   "username": "Tocsin"},
    "webhook": {"url": "https://receiver.example.com/hook", "secret": "whsec"},
    "pagerduty": {"integration_key": "pdkey", "api_url": "https://events.eu.pagerduty.com"},
    "opsgenie": {"api_key": "ogkey", "api_url": "https://api.eu.opsgenie.com",
                 "responders": "SRE"},
    "chatwork": {"api_token": "cwtoken", "room_id": "123",
                 "api_url": "https://api.chatwork.com"},
    "hipchat": {"api_url": "https://chat.example.com", "room": "Ops", "auth_token": "hctoken"},
    "ilert": {"integration_key": "ilkey", "api_url": "https://api.ilert.com"},
    "servicenow": {"instance_url": "https://acme.service-now.com", "username": "tocsin",
                   "password": "snpw", "assignment_group": "Service Desk",
                   "close_code": "Solution provided"},
    "zendesk": {"api_url": "https://acme.zendesk.com", "email": "agent@example.com",
                "api_token": "zdtoken", "group_id": "360001"},
    "zenduty": {"webhook_url": "https://www.zenduty.com/api/events/key/"},
}

REQUIRED = {
    "email": {"recipients"},
    "slack": {"webhook_url"},
    "mattermost": {"webhook_url"},
    "webhook": {"url"},
    "pagerduty": {"integration_key"},
    "opsgenie": {"api_key"},
    "chatwork": {"api_token", "room_id"},
    "hipchat": {"api_url", "room", "auth_token"},
    "ilert": {"integration_key"},
    "servicenow": {"instance_url", "username", "password"},
    "zendesk": {"api_url", "email", "api_token"},
    "zenduty": {"webhook_url"},
}

SECRETS = {
    "webhook": {"secret"}, "pagerduty": {"integration_key"}, "opsgenie": {"api_key"},
    "chatwork": {"api_token"}, "hipchat": {"auth_token"}, "ilert": {"integration_key"},
    "servicenow": {"password"}, "zendesk": {"api_token"},
    # Incoming-webhook URLs are credentials themselves: whoever has one can post.
    "slack": {"webhook_url"}, "mattermost": {"webhook_url"}, "zenduty": {"webhook_url"},
}


def fields(kind):
    return KINDS[kind].FIELDS


def errors_of(kind, config, **kwargs):
    with pytest.raises(ValidationError) as caught:
        clean_config(fields(kind), config, **kwargs)
    return caught.value.message_dict


def test_the_kind_registry_matches_the_model_choices_and_every_kind_has_fields_and_send():
    assert set(KINDS) == set(Destination.Kind.values) == set(FULL)
    for module in KINDS.values():
        assert module.FIELDS and callable(module.send)
        assert len({f.name for f in module.FIELDS}) == len(module.FIELDS)


@pytest.mark.parametrize("kind", sorted(FULL))
def test_a_full_config_is_accepted(kind):
    cleaned = clean_config(fields(kind), FULL[kind])
    assert set(cleaned) == set(FULL[kind])


@pytest.mark.parametrize("kind", sorted(FULL))
def test_the_required_keys_are_the_documented_ones(kind):
    assert {f.name for f in fields(kind) if f.required} == REQUIRED[kind]
    assert {f.name for f in fields(kind) if f.secret} == SECRETS.get(kind, set())


@pytest.mark.parametrize(("kind", "key"), sorted(
    (kind, key) for kind, keys in REQUIRED.items() for key in keys))
def test_a_missing_required_key_is_refused_naming_the_key(kind, key):
    config = {k: v for k, v in FULL[kind].items() if k != key}
    errors = errors_of(kind, config)
    assert set(errors) == {key}
    assert errors[key] == ["This field is required."]
    # An empty value is as good as missing.
    assert set(errors_of(kind, {**config, key: ""})) == {key}


@pytest.mark.parametrize("kind", sorted(FULL))
def test_an_empty_config_names_every_required_key(kind):
    assert set(errors_of(kind, {})) == REQUIRED[kind]


@pytest.mark.parametrize("kind", sorted(FULL))
def test_an_unknown_key_is_refused_and_the_allowed_ones_listed(kind):
    errors = errors_of(kind, {**FULL[kind], "webhook": "x", "extra_key": 1})
    message = errors["config"][0]
    assert "Unknown keys: extra_key, webhook." in message
    for spec in fields(kind):
        assert spec.name in message


def test_a_config_that_is_not_an_object_is_refused():
    assert "config" in errors_of("slack", ["https://hooks.slack.com/x"])


URL_FIELDS = sorted((kind, f.name) for kind in FULL for f in fields(kind)
                    if f.type in (URL, SECRET_URL))


def test_every_http_kind_has_an_overridable_base_url():
    assert {kind for kind, _ in URL_FIELDS} == set(FULL) - {"email"}


@pytest.mark.parametrize(("kind", "key"), URL_FIELDS)
@pytest.mark.parametrize("bad", ["not a url", "ftp://files.example.com/x", "javascript:alert(1)",
                                 "http://", "//example.com/x"])
def test_a_bad_url_is_refused(kind, key, bad):
    errors = errors_of(kind, {**FULL[kind], key: bad})
    assert set(errors) == {key}


@pytest.mark.parametrize(("kind", "key", "default"), [
    ("pagerduty", "api_url", "https://events.pagerduty.com"),
    ("opsgenie", "api_url", "https://api.opsgenie.com"),
    ("chatwork", "api_url", "https://api.chatwork.com"),
    ("ilert", "api_url", "https://api.ilert.com"),
    ("servicenow", "close_code", "Solution provided"),
    ("email", "subject_template", "Alert {alert_name} changed status to {state}"),
])
def test_defaults_are_filled_in(kind, key, default):
    config = {k: v for k, v in FULL[kind].items() if k != key}
    assert clean_config(fields(kind), config)[key] == default


def test_optional_keys_without_a_default_are_left_out():
    cleaned = clean_config(fields("opsgenie"), {"api_key": "k"})
    assert cleaned == {"api_key": "k", "api_url": "https://api.opsgenie.com"}


@pytest.mark.parametrize(("kind", "key"), [
    ("pagerduty", "api_url"), ("hipchat", "api_url"), ("zendesk", "api_url"),
    ("servicenow", "instance_url"),
])
def test_a_trailing_slash_on_a_base_url_is_dropped(kind, key):
    cleaned = clean_config(fields(kind), {**FULL[kind], key: FULL[kind][key] + "/"})
    assert cleaned[key] == FULL[kind][key]


def test_webhook_urls_are_kept_exactly_as_given():
    url = "https://www.zenduty.com/api/events/key/"
    assert clean_config(fields("zenduty"), {"webhook_url": url})["webhook_url"] == url


def test_recipients_accept_a_list_or_a_separated_string_and_refuse_bad_addresses():
    spec = fields("email")
    assert clean_config(spec, {"recipients": "a@example.com,b@example.com  c@example.com"})[
        "recipients"] == ["a@example.com", "b@example.com", "c@example.com"]
    assert clean_config(spec, {"recipients": ["a@example.com"]})["recipients"] == [
        "a@example.com"]
    assert "recipients" in errors_of("email", {"recipients": "a@example.com, not-an-address"})
    assert "recipients" in errors_of("email", {"recipients": " , "})


def test_a_value_that_is_not_text_is_refused():
    assert "room_id" in errors_of("chatwork", {**FULL["chatwork"], "room_id": {"id": 1}})
    assert clean_config(fields("chatwork"), {**FULL["chatwork"], "room_id": 123})[
        "room_id"] == "123"


@pytest.mark.parametrize(("kind", "key"), sorted(
    (kind, key) for kind, keys in SECRETS.items() for key in keys))
def test_a_secret_left_empty_on_update_keeps_the_current_value(kind, key):
    current = clean_config(fields(kind), FULL[kind])
    for empty in ({}, {key: ""}, {key: None}):
        update = {**{k: v for k, v in FULL[kind].items() if k != key}, **empty}
        assert clean_config(fields(kind), update, current=current)[key] == FULL[kind][key]
    # A new value replaces it.
    rotated = "https://rotated.example.com/hook" if key.endswith("url") else "rotated"
    replaced = clean_config(fields(kind), {**FULL[kind], key: rotated}, current=current)
    assert replaced[key] == rotated


@pytest.mark.parametrize(("kind", "key"), sorted(
    (kind, key) for kind, keys in SECRETS.items() for key in keys))
def test_public_config_never_contains_secrets(kind, key):
    cleaned = clean_config(fields(kind), FULL[kind])
    shown = public_config(fields(kind), cleaned)
    assert key not in shown
    assert FULL[kind][key] not in repr(shown)
    assert set(shown) == set(cleaned) - SECRETS[kind]


def test_public_config_keeps_everything_for_kinds_without_secrets():
    cleaned = clean_config(fields("email"), FULL["email"])
    assert public_config(fields("email"), cleaned) == cleaned


def test_a_line_break_in_a_secret_or_text_value_is_refused():
    errors = errors_of("opsgenie", {**FULL["opsgenie"], "api_key": "key\nX-Injected: 1"})
    assert set(errors) == {"api_key"}
    errors = errors_of("chatwork", {**FULL["chatwork"], "room_id": "12\r\n34"})
    assert set(errors) == {"room_id"}
