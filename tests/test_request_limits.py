"""Request bodies are bounded on every endpoint: the admin and the REST API refuse bodies
over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) with 413, while the ingest endpoints keep their
own, larger limits (docs/security.md)."""

import json
import logging

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.files.uploadedfile import SimpleUploadedFile

from incidents.models import Team
from integrations.models import InboundEvent, Integration, IntegrationToken
from tests.conftest import api_client_for
from tocsin.env import env_log_level

THREE_MB = 3 * 1024 * 1024


def test_a_three_megabyte_login_form_is_refused_with_413_and_logs_nobody_in(client, manager):
    body = "username=max&password=" + "x" * THREE_MB
    response = client.post(
        "/admin/login/", data=body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 413
    page = response.content.decode()
    assert "more than 2.5 MB" in page and 'href="/admin/login/"' in page
    assert "_auth_user_id" not in client.session


def test_a_three_megabyte_admin_form_is_refused_and_nothing_is_stored(client, manager):
    client.force_login(manager)
    body = "name=" + "x" * THREE_MB
    response = client.post(
        "/admin/incidents/team/add/", data=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 413
    assert not Team.objects.exists()


def test_a_three_megabyte_json_body_to_the_api_is_a_413_naming_the_problem(manager):
    response = api_client_for(manager).post(
        "/api/v1/teams/", data=json.dumps({"name": "x" * THREE_MB}),
        content_type="application/json",
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "Request body is larger than 2621440 bytes."}
    assert not Team.objects.exists()


def test_form_and_multipart_bodies_to_the_api_are_bounded_too(manager):
    client = api_client_for(manager)
    form = client.post(
        "/api/v1/teams/", data="name=" + "x" * THREE_MB,
        content_type="application/x-www-form-urlencoded",
    )
    upload = client.post(
        "/api/v1/teams/",
        data={"name": "Ops", "file": SimpleUploadedFile("big.bin", b"x" * THREE_MB)},
        format="multipart",
    )
    assert (form.status_code, upload.status_code) == (413, 413)
    assert not Team.objects.exists()


def test_ordinary_api_bodies_still_work(manager):
    response = api_client_for(manager).post("/api/v1/teams/", {"name": "Ops"}, format="json")
    assert response.status_code == 201
    assert Team.objects.get().name == "Ops"


def test_too_many_form_fields_is_a_400_not_a_500(client, manager):
    client.force_login(manager)
    body = "&".join(f"f{i}=1" for i in range(1500))
    response = client.post(
        "/admin/incidents/team/add/", data=body,
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400


def test_the_generic_ingest_still_accepts_bodies_up_to_its_own_limit(client, integration,
                                                                       settings):
    limit = settings.TOCSIN_MAX_BODY_BYTES
    document = {"message": "Big payload", "payload": {"blob": ""}}
    document["payload"]["blob"] = "x" * (limit - len(json.dumps(document)))
    body = json.dumps(document)
    assert len(body) == limit > settings.DATA_UPLOAD_MAX_MEMORY_SIZE // 3
    response = client.post(f"/api/events/{integration.key}/", data=body,
                           content_type="application/json")
    assert response.status_code == 200
    assert bytes(InboundEvent.objects.get().body) == body.encode()
    too_big = client.post(f"/api/events/{integration.key}/", data=body + " ",
                          content_type="application/json")
    assert too_big.status_code == 413


def test_the_incoming_webhook_still_accepts_bodies_up_to_five_megabytes(client, service):
    integration = Integration.objects.create(
        name="Grafana", kind="incoming_webhook", service=service
    )
    _, plaintext = IntegrationToken.issue(integration, "grafana")
    body = json.dumps({"report": {"title": "Big"}, "blob": "x" * (5 * 1024 * 1024 - 100)})
    assert len(body) > THREE_MB
    response = client.post(
        "/api/incoming-webhooks/incident.create?title=Big", data=body,
        content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {plaintext}",
    )
    assert response.status_code == 200
    assert len(bytes(InboundEvent.objects.get().body)) == len(body)


def test_accepting_and_queueing_an_alert_logs_no_info_line_from_the_queue(
    client, integration, caplog, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/api/events/{integration.key}/", data=json.dumps({"message": "Disk full"}),
            content_type="application/json",
        )
    assert response.status_code == 200
    queue_lines = [r for r in caplog.records if r.name == "django-q"]
    assert [r.getMessage() for r in queue_lines if r.levelno < logging.WARNING] == []


def test_the_queue_info_lines_come_back_when_its_logger_is_set_to_info(
    client, integration, caplog, django_capture_on_commit_callbacks
):
    queue_logger = logging.getLogger("django-q")
    before = queue_logger.level
    queue_logger.setLevel(logging.INFO)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(
                f"/api/events/{integration.key}/", data=json.dumps({"message": "Disk full"}),
                content_type="application/json",
            )
    finally:
        queue_logger.setLevel(before)
    assert any(
        r.name == "django-q" and r.getMessage().startswith("Enqueued") for r in caplog.records
    )



def test_log_levels_from_the_environment_are_checked(monkeypatch):
    monkeypatch.setenv("TOCSIN_QUEUE_LOG_LEVEL", "info")
    assert env_log_level("TOCSIN_QUEUE_LOG_LEVEL", "WARNING") == "INFO"
    monkeypatch.setenv("TOCSIN_QUEUE_LOG_LEVEL", "chatty")
    with pytest.raises(ImproperlyConfigured, match="TOCSIN_QUEUE_LOG_LEVEL must be one of"):
        env_log_level("TOCSIN_QUEUE_LOG_LEVEL", "WARNING")


def test_the_queue_logger_defaults_to_warning(settings):
    assert settings.LOGGING["loggers"]["django-q"]["level"] == "WARNING"
    assert logging.getLogger("django-q").getEffectiveLevel() == logging.WARNING


def test_a_three_megabyte_file_posted_to_the_login_page_is_refused_too(client, manager):
    response = client.post("/admin/login/", {
        "username": "max", "password": "pw-max",
        "file": SimpleUploadedFile("big.bin", b"x" * THREE_MB),
    })
    assert response.status_code == 413
    assert "_auth_user_id" not in client.session


def test_small_multipart_forms_still_work(client, manager):
    response = client.post("/admin/login/?next=/admin/", {"username": "max",
                                                            "password": "pw-max"})
    assert response.status_code == 302
