"""/healthz reports the face population adaptation: learning or not, applied or not, and why not."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.edge.conftest import IT_TOKEN


def test_a_fresh_box_reports_it_learns_unadapted_with_the_reason(client: TestClient) -> None:
    # given a fresh box, when branch IT asks for the details of its health
    response = client.get("/healthz", headers={"Authorization": f"Bearer {IT_TOKEN}"})
    # then the adaptation is reported: learning, not applied, because it has seen too few faces
    assert response.status_code == 200, response.text
    adaptation = response.json()["adaptation"]
    assert adaptation["learning"] is True and adaptation["applied"] is False
    assert adaptation["faces_seen"] == 0 and adaptation["version"] == 0 and adaptation["digest"] is None
    assert adaptation["reason"] == "too few faces: 0 < 256"


def test_anyone_gets_only_the_status(client: TestClient) -> None:
    assert set(client.get("/healthz").json()) == {"status"}
