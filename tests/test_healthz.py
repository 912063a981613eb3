class UnreachableDatabase:
    def cursor(self):
        raise ConnectionError("database is down")


def test_healthz_reports_database_and_queue(client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert "pending_tasks" in body["queue"]
    assert "workers_running" in body["queue"]


def test_healthz_is_503_when_the_database_is_unreachable(client, db, monkeypatch):
    monkeypatch.setattr("tocsin.views.connection", UnreachableDatabase())
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"].startswith("error")


def test_healthz_needs_no_login(client, db):
    assert client.get("/healthz").status_code == 200
