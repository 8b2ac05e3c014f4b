"""Who may reach the HTTP API: every route needs a session or a token, checked against the app's own
route table and OpenAPI schema, so a new route cannot be left open."""

import logging
import re

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from opticlink.api.app import PAGES, PUBLIC, create_app
from opticlink.api.config import CameraConfig, ServiceConfig
from opticlink.api.service import Service
from opticlink.auth.sessions import COOKIE, SessionPolicy, Sessions
from tests.auth.helpers import credentials

PASSWORD = "correct horse battery"


@pytest.fixture
def service():
    return Service(ServiceConfig(cameras=[CameraConfig(id="door", url="rtsp://admin:s3cr3t-cam@127.0.0.1:9/none")]))


def _client(service, address: str = "127.0.0.1", **options) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(service), client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8080", **options)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "door", path)


async def test_every_route_in_the_openapi_schema_answers_401_without_credentials(service):
    app = create_app(service)
    schema = app.openapi()["paths"]
    assert {"/api/cameras", "/api/cameras/{camera}", "/api/hub/latency", "/api/audit", "/api/me"} <= set(schema)
    assert set(PUBLIC) == {"/healthz", "/login", "/logout"}  # growing this list is a decision, not an accident
    checked = 0
    async with _client(service) as client:
        for path, operations in schema.items():
            if path in PUBLIC:
                continue
            for method in operations:
                response = await client.request(method.upper(), _concrete(path))
                assert response.status_code == 401, (method, path, response.status_code)
                assert response.headers["www-authenticate"] == "Bearer"
                checked += 1
    assert checked >= 6


async def test_every_route_outside_the_schema_is_closed_too(service):
    app = create_app(service)
    async with _client(service) as client:
        for route in app.routes:
            if isinstance(route, Mount):
                paths, methods = [f"{route.path}/player.js", f"{route.path}/index.html"], {"GET"}
            elif getattr(route, "methods", None):
                paths, methods = [_concrete(route.path)], route.methods - {"HEAD"}
            else:
                continue  # the WebSocket: tests/auth/test_live_access.py
            for path in paths:
                if path in PUBLIC:
                    continue
                for method in methods:
                    response = await client.request(method, path)
                    expected = 303 if path in PAGES and method == "GET" else 401
                    assert response.status_code == expected, (method, path, response.status_code)
                    if expected == 303:
                        assert response.headers["location"].startswith("/login")
        assert any(isinstance(r, APIRoute) and r.path == "/metrics" for r in app.routes)
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/login")).status_code == 200


async def test_a_bearer_token_reads_the_metrics_and_a_wrong_one_does_not(service):
    creds = credentials(service, "prometheus", role="viewer")
    async with _client(service) as client:
        response = await client.get("/metrics", headers=creds.bearer)
        assert response.status_code == 200 and "opticlink_camera_playing" in response.text
        assert (await client.get("/metrics", headers={"Authorization": "Bearer olk_wrong"})).status_code == 401
        client.cookies.set(COOKIE, "made-up")
        assert (await client.get("/metrics")).status_code == 401


async def test_logging_in_sets_an_httponly_strict_cookie_that_opens_the_api_until_logout(service):
    service.gate.accounts.add("ada", "operator", PASSWORD, ["door"])
    async with _client(service) as client:
        response = await client.post("/login", data={"name": "ada", "password": PASSWORD, "next": "/audit"})
        assert response.status_code == 303 and response.headers["location"] == "/audit"
        cookie = response.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert "Secure" not in cookie  # plain HTTP on loopback; over HTTPS it is Secure
        assert (await client.get("/api/me")).json() == {"name": "ada", "role": "operator", "talk": ["door"]}
        assert (await client.post("/logout")).status_code == 303
        assert (await client.get("/api/me")).status_code == 401


async def test_over_https_the_session_cookie_is_secure(service):
    service.gate.accounts.add("ada", "viewer", PASSWORD)
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="https://127.0.0.1:8443") as client:
        response = await client.post("/login", json={"name": "ada", "password": PASSWORD})
        cookie = response.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie


async def test_a_login_never_redirects_to_another_site(service):
    service.gate.accounts.add("ada", "viewer", PASSWORD)
    async with _client(service) as client:
        for target in ("//evil.example/", "https://evil.example/", "/\\\\evil.example"):
            response = await client.post("/login", data={"name": "ada", "password": PASSWORD, "next": target})
            assert response.headers["location"] == "/", target


async def test_failed_logins_are_limited_per_address(service):
    service.gate.accounts.add("ada", "viewer", PASSWORD)
    async with _client(service, "192.0.2.7") as attacker, _client(service, "192.0.2.8") as other:
        codes = [(await attacker.post("/login", json={"name": "ada", "password": f"guess{i}"})).status_code
                 for i in range(6)]
        assert codes == [401] * 5 + [429]
        refused = await attacker.post("/login", json={"name": "ada", "password": PASSWORD})
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0  # even the right one
        assert (await other.post("/login", json={"name": "ada", "password": PASSWORD})).status_code == 200
    actions = [row.action for row in service.gate.db.audit()]
    assert actions.count("login_failed") == 5 and "login_refused" in actions and "login" in actions


async def test_a_host_name_the_service_is_not_known_by_is_refused(service):
    creds = credentials(service)
    async with _client(service, headers=creds.bearer) as client:
        assert (await client.get("/api/cameras")).status_code == 200
        for host in ("evil.example", "evil.example:8080", "localhost.evil.example"):
            response = await client.get("/api/cameras", headers={"Host": host})
            assert response.status_code == 421, host  # DNS rebinding: the attacker's name reaches our address
        assert (await client.get("/api/cameras", headers={"Host": "192.168.1.20:8080"})).status_code == 200
        assert (await client.get("/api/cameras", headers={"Host": "localhost:8080"})).status_code == 200


async def test_configured_host_names_are_accepted():
    service = Service(ServiceConfig(hosts=["nvr.home.arpa"]))
    async with _client(service, headers=credentials(service).bearer) as client:
        assert (await client.get("/api/cameras", headers={"Host": "nvr.home.arpa:8080"})).status_code == 200


async def test_a_page_of_another_origin_cannot_change_anything(service):
    creds = credentials(service)
    async with _client(service, headers=creds.bearer) as client:
        evil = await client.patch("/api/cameras/door/settings", json={}, headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403
        own = await client.patch("/api/cameras/door/settings", json={}, headers={"Origin": "http://127.0.0.1:8080"})
        assert own.status_code == 200


async def test_only_admins_read_the_audit_log_and_change_settings(service):
    viewer, admin = credentials(service, "vic", role="viewer"), credentials(service, "root", role="admin")
    async with _client(service) as client:
        assert (await client.get("/api/audit", headers=viewer.bearer)).status_code == 403
        assert (await client.patch("/api/cameras/door/settings", json={}, headers=viewer.bearer)).status_code == 403
        assert (await client.get("/audit", headers=viewer.bearer)).status_code == 403
        assert (await client.get("/api/audit", headers=admin.bearer)).status_code == 200


async def test_an_unknown_camera_is_404(service):
    async with _client(service, headers=credentials(service).bearer) as client:
        response = await client.get("/api/cameras/nope")
        assert response.status_code == 404 and "no camera 'nope'" in response.text


async def test_the_one_time_link_logs_in_once(service):
    secret = service.gate.first_run_link()
    assert secret is not None
    async with _client(service) as client:
        response = await client.get(f"/login?token={secret}")
        assert response.status_code == 303 and response.headers["location"] == "/"
        assert (await client.get("/api/me")).json()["name"] == "admin"
    async with _client(service) as again:
        reused = await again.get(f"/login?token={secret}")
        assert reused.status_code == 401 and "used already" in reused.text
    service.gate.accounts.set_password("admin", PASSWORD)
    assert service.gate.first_run_link() is None  # someone can log in now: no more links at start


def test_sessions_end_when_idle_and_after_their_absolute_lifetime(service):
    sessions = Sessions(service.database, SessionPolicy(idle=600, absolute=3600))
    user = service.gate.accounts.add("ada", "viewer", None)
    secret = sessions.create(user, now=0)
    assert sessions.resolve(secret, now=500).name == "ada"
    assert sessions.resolve(secret, now=1000).name == "ada"  # 500 s after the last use: still active
    assert sessions.resolve(secret, now=1700) is None  # 700 s idle
    kept = sessions.create(user, now=0)
    for now in range(300, 3600, 300):
        assert sessions.resolve(kept, now=now) is not None
    assert sessions.resolve(kept, now=3700) is None  # in use all along, but logged in over an hour ago


async def test_no_password_token_or_camera_secret_in_logs_or_api_output(service, caplog):
    service.gate.accounts.add("ada", "admin", PASSWORD)
    admin = credentials(service, "root")
    caplog.set_level(logging.DEBUG)
    await service.start()
    try:
        async with _client(service) as client:
            await client.post("/login", json={"name": "ada", "password": "wrong " + PASSWORD})
            await client.post("/login", json={"name": PASSWORD, "password": PASSWORD})  # a password typed as name
            ok = await client.post("/login", json={"name": "ada", "password": PASSWORD})
            session = ok.cookies[COOKIE]
            outputs = [ok.text]
            for path in ("/api/audit", "/api/me", "/api/cameras", "/api/cameras/door", "/metrics"):
                outputs.append((await client.get(path, headers=admin.bearer)).text)
            logging.getLogger("opticlink.rtsp").warning("could not reach rtsp://admin:s3cr3t-cam@127.0.0.1:9/none")
            runtime = service.cameras["door"]
            runtime.session.last_error = RuntimeError("401 from rtsp://admin:s3cr3t-cam@127.0.0.1:9/none")
            outputs.append(str(runtime.status()["error"]))
    finally:
        await service.stop()
    text = caplog.text + "".join(outputs)
    assert "login_failed" in caplog.text and "login user=ada" in caplog.text
    assert "rtsp://admin:***@127.0.0.1:9/none" in text
    for secret in ("s3cr3t-cam", session, admin.token, admin.cookie):
        assert secret not in text
    assert PASSWORD not in text  # not even typed in the name field: an unknown name is never recorded


async def test_parallel_guesses_cannot_outrun_the_login_limit(service):
    import asyncio

    service.gate.accounts.add("ada", "viewer", PASSWORD)
    async with _client(service, "192.0.2.9") as attacker:
        answers = await asyncio.gather(*(attacker.post("/login", json={"name": "ada", "password": f"guess{i}"})
                                         for i in range(20)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [401] * 5 + [429] * 15
