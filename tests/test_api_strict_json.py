"""The REST API reads request bodies as strictly as the ingest webhooks (docs/security.md):
what cannot be stored or echoed back is a 400 naming the place, never a 500."""

import pytest

from incidents.models import Team
from tests.conftest import api_client_for

# Written by hand: senders' encoders escape lone surrogates as \ud800, and Python's
# json.dumps writes NaN and Infinity.
UNSTORABLE = [
    ('{"name": "ops\\ud800"}', "name: contains a lone surrogate"),
    ('{"name": "ops\\u0000"}', "name: contains a NUL character"),
    ('{"name": "ops", "x": NaN}', "x: is NaN"),
    ('{"name": "ops", "x": 1e999}', "x: is 1e999"),
    ('{"name": "ops", "x": ' + "[" * 70 + "]" * 70 + "}", "nests deeper than 64 levels"),
    ('{"\\udfff": 1}', "has a key that contains a lone surrogate"),
]


@pytest.mark.parametrize(("body", "named"), UNSTORABLE)
def test_unstorable_json_in_an_api_body_is_a_400_naming_the_place(manager, body, named):
    response = api_client_for(manager).post("/api/v1/teams/", body,
                                            content_type="application/json")
    assert response.status_code == 400
    assert named in response.json()["detail"]
    assert not Team.objects.exists()


def test_a_lone_surrogate_in_a_mapping_is_refused_before_it_can_be_echoed(manager, integration):
    response = api_client_for(manager).patch(
        f"/api/v1/integrations/{integration.pk}/", '{"mapping": {"\\ud800": null}}',
        content_type="application/json")
    assert response.status_code == 400
    assert "mapping: has a key that contains a lone surrogate" in response.json()["detail"]
    integration.refresh_from_db()
    assert integration.mapping is None


def test_a_body_that_is_not_utf8_is_a_400(manager):
    response = api_client_for(manager).post("/api/v1/teams/", b'{"name": "\xff"}',
                                            content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_json_fields_in_a_form_post_are_read_as_strictly(manager, integration):
    # The browsable API posts forms: the mapping arrives as text inside a multipart body.
    response = api_client_for(manager).patch(
        f"/api/v1/integrations/{integration.pk}/",
        {"mapping": '{"direct": {"message": {"value": "a\\ud800"}}}'}, format="multipart")
    assert response.status_code == 400
    assert "lone surrogate" in response.json()["mapping"][0]
    integration.refresh_from_db()
    assert integration.mapping is None


@pytest.mark.parametrize("charset", ["base64", "rot13", "hex"])
def test_a_codec_that_is_no_text_encoding_is_a_400(manager, charset):
    response = api_client_for(manager).generic(
        "POST", "/api/v1/teams/", b'{"name": "ops"}',
        content_type=f"application/json; charset={charset}")
    assert response.status_code == 400
    assert "charset" in response.json()["detail"]
