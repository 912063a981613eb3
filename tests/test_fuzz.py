"""Property-based fuzzing of the ingest endpoints and the mapping/rules validators.

Invariants (docs/security.md): no input gets a 5xx; an accepted (2xx) event reaches
`completed` or `failed` with a cause when the worker runs it, and nothing is left `queued`.
The number of examples per property is bounded (TOCSIN_FUZZ_EXAMPLES, default 40) so the
suite fits in CI; raise it locally to search harder.
"""

import base64
import json
import os
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from integrations import email_body, inbound_mail
from integrations.models import AlertType, InboundEvent, Integration, IntegrationToken
from tests.conftest import api_client_for
from tests.ingest_helpers import run_tasks  # noqa: F401 (fixture)

EXAMPLES = int(os.environ.get("TOCSIN_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.data_too_large],
)

# Text including what breaks storage: lone surrogates, NUL, control and bidi characters.
nasty_text = st.text(
    alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF, categories=None),
    max_size=40,
) | st.sampled_from(["", " ", "\x00", "\ud800", "\udfff", "\u202e", "a" * 600, "é" * 300])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | nasty_text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(nasty_text, children, max_size=4),
    max_leaves=16,
)
alert_types = st.sampled_from(AlertType.values) | json_values
generic_bodies = st.fixed_dictionaries(
    {},
    optional={
        "message": nasty_text | json_values,
        "alert_type": alert_types,
        "entity_id": nasty_text | json_values,
        "summary": nasty_text | json_values,
        "suppressed": json_values,
        "tags": st.lists(nasty_text | st.integers(), max_size=6) | json_values,
        "urls": st.lists(st.fixed_dictionaries({"link_url": nasty_text},
                                               optional={"link_text": json_values}),
                         max_size=3) | json_values,
        "sla": json_values,
        "priority": json_values,
        "escalation_policy": json_values,
        "urgency": json_values,
        "stakeholders": json_values,
        "stakeholders_comms": json_values,
    },
)


def encoded(document) -> bytes:
    # Python's own encoder, as many senders use it: it writes NaN, Infinity and \ud800.
    return json.dumps(document, allow_nan=True).encode()


raw_bodies = (
    generic_bodies.map(encoded)
    | json_values.map(encoded)
    | st.binary(max_size=200)
    | st.sampled_from([
        b"", b"{", b"[" * 5000 + b"]" * 5000, b'{"message": NaN}', b'{"message": "x", "n": 1e999}',
        b'{"message": "\\ud800"}', b"\xff\xfe{}", b'{"message": "x"}' * 3,
    ])
)


def assert_accepted_events_finished():
    left = list(InboundEvent.objects.filter(status=InboundEvent.Status.QUEUED)
                .values_list("pk", "error"))
    assert left == [], "accepted events left queued"
    for status, error in InboundEvent.objects.filter(
        status__in=[InboundEvent.Status.FAILED, InboundEvent.Status.REJECTED]
    ).values_list("status", "error"):
        assert error.strip(), f"a {status} event has no cause"


def post(client, url, body: bytes, capture, **headers):
    with capture(execute=True):
        return client.post(url, data=body, content_type="application/json", **headers)


@pytest.fixture
def generic_hook(service):
    # No rate limit: with many examples, 429s would hide what the properties look at.
    return Integration.objects.create(name="fuzz", kind="generic", service=service,
                                      create_incidents_for=list(AlertType.values),
                                      rate_limit_per_minute=0)


@FUZZ
@given(body=raw_bodies)
def test_generic_webhook_never_fails_an_accepted_alert(
    client, generic_hook, run_tasks, django_capture_on_commit_callbacks, body  # noqa: F811
):
    response = post(client, f"/api/events/{generic_hook.key}/", body,
                    django_capture_on_commit_callbacks)
    assert response.status_code < 500, response.content
    assert response["Content-Type"].startswith("application/json")
    if response.status_code == 200:
        event = InboundEvent.objects.get(trace_id=response.json()["trace_id"])
        assert event.status in (InboundEvent.Status.COMPLETED, InboundEvent.Status.FAILED)
    assert_accepted_events_finished()


MAPPING = {
    "direct": {"message": {"path": "title"}, "entity_id": {"path": "id"},
               "alert_type": {"value": "critical"}},
    "conditional": [
        {"if": [{"path": "title", "op": "exists", "value": False}],
         "then": {"message": {"path": "body"}}},
        {"if": [{"path": "level", "op": "matches", "value": "^(a+)+$"}],
         "then": {"alert_type": {"value": "info"}}},
    ],
}


@FUZZ
@given(body=st.fixed_dictionaries({}, optional={"title": json_values, "body": json_values,
                                                "id": json_values, "level": json_values})
       .map(encoded) | raw_bodies)
def test_generic_webhook_with_a_mapping_never_fails_an_accepted_alert(
    client, generic_hook, run_tasks, django_capture_on_commit_callbacks, body  # noqa: F811
):
    Integration.objects.filter(pk=generic_hook.pk).update(mapping=MAPPING)
    response = post(client, f"/api/events/{generic_hook.key}/", body,
                    django_capture_on_commit_callbacks)
    assert response.status_code < 500, response.content
    assert_accepted_events_finished()


@pytest.fixture
def bearer(service):
    hook = Integration.objects.create(name="grafana", kind="incoming_webhook", service=service,
                                      rate_limit_per_minute=0)
    return IntegrationToken.issue(hook, "fuzz")[1]


query_params = st.dictionaries(
    st.sampled_from(["title", "severity", "labels", "drill", "roomprefix", "other"]),
    nasty_text.filter(lambda text: "\x00" not in text)
    | st.sampled_from(["json(report.title)", "json()", "json(a.0.b)", "json(((", "json(-1)"]),
    max_size=5,
)


@FUZZ
@given(params=query_params, body=raw_bodies)
def test_incoming_webhook_declares_whatever_the_body(
    client, bearer, run_tasks, django_capture_on_commit_callbacks, params, body  # noqa: F811
):
    query = urlencode({key: value.encode("utf-8", "surrogatepass") for key, value in
                       params.items()})
    response = post(client, f"/api/incoming-webhooks/incident.create?{query}", body,
                    django_capture_on_commit_callbacks, HTTP_AUTHORIZATION=f"Bearer {bearer}")
    assert response.status_code < 500, response.content
    if response.status_code == 200:
        event = InboundEvent.objects.get(trace_id=response.json()["trace_id"])
        # The incoming webhook never fails: whatever the body, an incident is declared.
        assert event.status == InboundEvent.Status.COMPLETED, event.error
    assert_accepted_events_finished()


header_values = nasty_text.filter(lambda text: "\n" not in text and "\r" not in text)
mail_lines = st.lists(
    st.tuples(st.sampled_from(["severity", "description", "source_id", "event_time",
                               "other_info", "Source-ID", "x" * 40, ""]),
              nasty_text | st.integers().map(str) | st.just(" " * 5000)),
    max_size=8,
)


def build_mail(subject: str, lines, html: bool) -> bytes:
    body = "\n".join(f"{key}: {value}" for key, value in lines)
    if html:
        body = "<html><body>" + "".join(f"<p>{line}</p>" for line in body.split("\n")) + \
            "</body></html>"
    content_type = "text/html" if html else "text/plain"
    head = (f"From: monitor@example.com\nTo: alerts@example.com\nSubject: {subject}\n"
            f"Content-Type: {content_type}; charset=utf-8\n\n")
    return (head + body).encode("utf-8", "surrogatepass")


mails = (
    st.builds(build_mail, header_values, mail_lines, st.booleans())
    | st.binary(max_size=300)
    | st.sampled_from([b"Subject: \xff\xfe caf\xe9\n\nseverity: 1\x00\n",
                       b"To: <<<@@@\n\n" + b" " * 20000 + b"x: y",
                       b"Content-Type: text/html\n\n" + b"<p>" * 3000])
)


@FUZZ
@given(raw=mails)
def test_email_body_parser_never_raises_and_gives_storable_fields(raw):
    fields = email_body.alert_fields(raw, received_at=email_body.datetime.now(email_body.UTC))
    assert fields.message
    json.dumps([fields.message, fields.summary, fields.payload, fields.extra],
               allow_nan=False).encode("utf-8")


@pytest.fixture
def mail_hook(service):
    return Integration.objects.create(name="mail", kind="email", service=service,
                                      rate_limit_per_minute=0)


@FUZZ
@given(raw=mails)
def test_email_ingest_never_fails_an_accepted_mail(
    mail_hook, run_tasks, django_capture_on_commit_callbacks, raw  # noqa: F811
):
    with django_capture_on_commit_callbacks(execute=True):
        event = inbound_mail.store_mail(raw, recipients=[mail_hook.email_address], via="fuzz")
    event.refresh_from_db()
    assert event.status in (InboundEvent.Status.COMPLETED, InboundEvent.Status.FAILED,
                            InboundEvent.Status.REJECTED)
    assert_accepted_events_finished()


ops = st.sampled_from(["equals", "not_equals", "contains", "matches", "exists", "gt", "lt",
                       "startswith", ""]) | json_values
regexes = st.sampled_from(["^(a+)+$", "(a|a)*b", "(?i)disk", r"(\w+)\1", "(?=x)", "[", "a{1000}",
                           "x" * 5000, "\\", "(?P<n>a)", "\\p{L}"]) | nasty_text
conditions = st.fixed_dictionaries(
    {"path": nasty_text | json_values, "op": ops, "value": json_values | regexes}
) | st.fixed_dictionaries(
    {"field": st.sampled_from(["alert_type", "message", "time_of_day", "day_of_week",
                               "seconds_since_last_incident", "payload_keys", "x"]),
     "op": ops, "value": json_values | regexes})
sources = st.fixed_dictionaries({}, optional={"path": nasty_text | json_values,
                                              "value": json_values})
fields = st.sampled_from(["message", "summary", "entity_id", "alert_type", "urgency",
                          "priority", "bogus"]) | nasty_text
mappings = st.none() | json_values | st.fixed_dictionaries({}, optional={
    "direct": st.dictionaries(fields, sources | json_values, max_size=4) | json_values,
    "conditional": st.lists(st.fixed_dictionaries({}, optional={
        "if": st.lists(conditions, max_size=3) | json_values,
        "then": st.dictionaries(fields, sources, max_size=3) | json_values,
    }), max_size=3) | json_values,
})


@FUZZ
@given(mapping=mappings)
def test_mapping_validation_answers_200_or_400(manager, generic_hook, mapping):
    client = api_client_for(manager)
    # Encoded as senders do (ASCII with escapes), so lone surrogates reach the server.
    response = client.patch(f"/api/v1/integrations/{generic_hook.pk}/",
                            json.dumps({"mapping": mapping}), content_type="application/json")
    assert response.status_code in (200, 400), response.content


rules = st.fixed_dictionaries(
    {"name": nasty_text.filter(lambda text: "\x00" not in text)},
    optional={
        "conditions": st.lists(conditions, max_size=3) | json_values,
        "actions": st.lists(json_values | st.fixed_dictionaries(
            {"type": st.sampled_from(["suppress", "set_alert_type", "set_message", "add_note",
                                      "add_tags", "set_priority", "set_urgency",
                                      "route_escalation_policy", "x"])},
            optional={"value": json_values | regexes}), max_size=3) | json_values,
        "position": json_values,
        "enabled": json_values,
        "stop": json_values,
    },
)


@FUZZ
@given(rule=rules)
def test_rule_validation_answers_201_or_400(manager, generic_hook, rule):
    client = api_client_for(manager)
    response = client.post(f"/api/v1/integrations/{generic_hook.pk}/rules/",
                           json.dumps(rule), content_type="application/json")
    assert response.status_code in (201, 400), response.content


# The inbound mail webhook's own multipart reader, before anymail sees the post.
part_headers = st.lists(st.sampled_from([
    b"Content-Transfer-Encoding: base64", b"Content-Type: text/plain; charset=idna",
    b"Content-Type: text/plain; charset=base64", b"Content-Type: text/plain; charset=utf-8",
    b"Content-Disposition: form-data; name*=bogus''x", b"Content-Type: message/rfc822",
    b"X-" + b"a" * 3000 + b": 1", b"",
]), max_size=3)
form_parts = st.tuples(
    st.sampled_from(["recipient", "sender", "body-mime", "attachment-1", "", "timestamp"]),
    part_headers, st.binary(max_size=120) | st.sampled_from([b"abc", b"--BOUND", b"\r\n\r\n"]),
)


@FUZZ
@given(parts=st.lists(form_parts, max_size=6), newline=st.sampled_from([b"\r\n", b"\n"]),
       closed=st.booleans())
def test_the_inbound_mail_webhook_answers_every_multipart_post_without_a_5xx(
    client, settings, mail_hook, django_capture_on_commit_callbacks, parts, newline, closed
):
    settings.ANYMAIL = {"WEBHOOK_SECRET": "fuzz:secret", "MAILGUN_WEBHOOK_SIGNING_KEY": "k"}
    body = b""
    for name, headers, value in parts:
        head = b'Content-Disposition: form-data; name="' + name.encode() + b'"' + newline
        head += b"".join(header + newline for header in headers)
        body += b"--BOUND" + newline + head + newline + value + newline
    body += b"--BOUND--" + newline if closed else b""
    auth = "Basic " + base64.b64encode(b"fuzz:secret").decode()
    with django_capture_on_commit_callbacks(execute=False):
        response = client.post("/anymail/mailgun/inbound_mime/", data=body,
                               content_type="multipart/form-data; boundary=BOUND",
                               HTTP_AUTHORIZATION=auth)
    assert response.status_code < 500, response.content


@FUZZ
@given(mapping=mappings, charset=st.sampled_from(["utf-8", "latin-1", "utf-16", "base64",
                                                  "rot13", "idna", "nonesuch"]),
       as_form=st.booleans())
def test_api_bodies_in_any_charset_or_as_forms_answer_without_a_5xx(
    manager, generic_hook, mapping, charset, as_form
):
    client = api_client_for(manager)
    url = f"/api/v1/integrations/{generic_hook.pk}/"
    if as_form:
        response = client.patch(url, {"mapping": json.dumps(mapping)}, format="multipart")
    else:
        response = client.generic("PATCH", url, json.dumps({"mapping": mapping}).encode(),
                                  content_type=f"application/json; charset={charset}")
    assert response.status_code in (200, 400, 415), response.content
