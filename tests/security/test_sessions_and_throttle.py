"""The dashboard's logins are random sessions that expire and end at the logout (the cookie was
one keyed hash of the token: the same for everyone, forever, logout or not); wrong tokens, at
the login and in Bearer headers, slow their sender down."""

from __future__ import annotations

import hashlib
import hmac
from types import SimpleNamespace

import httpx
from fastapi.testclient import TestClient
from served_kit import Served

from mao.config import Settings
from mao.ui.auth import COOKIE, Sessions
from mao.web.throttle import BURST, FORGIVEN_PER_MINUTE, FailureThrottle, client_of

TOKEN = "session-token-0123456789"
OWN = {"Origin": "http://testserver"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
WRONG = {"Authorization": "Bearer not-the-token"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _login(client: TestClient, token: str = TOKEN) -> httpx.Response:
    return client.post("/ui/login", data={"token": token, "next": "/ui"}, headers=OWN, follow_redirects=False)


def _browser(api) -> TestClient:
    """Another browser: a client with a cookie jar of its own."""
    return TestClient(api.client.app, follow_redirects=False)


def _opens(client: TestClient, cookie: str) -> bool:
    """Whether the dashboard takes this cookie (a browser of its own: no other cookie)."""
    browser = TestClient(client.app, cookies={COOKIE: cookie}, follow_redirects=False)
    status = browser.get("/ui/pipelines").status_code
    assert status in (200, 303), status
    return status == 200


# ---------------------------------------------------------------------------- sessions


def test_each_login_opens_its_own_random_session(make_api) -> None:
    api = make_api(api_token=TOKEN)
    first, second = _login(_browser(api)), _login(_browser(api))
    assert first.status_code == second.status_code == 303
    one, two = first.cookies[COOKIE], second.cookies[COOKIE]
    assert one != two and len(one) >= 40
    assert TOKEN not in one and hashlib.sha256(TOKEN.encode()).hexdigest() not in one
    assert _opens(api.client, one) and _opens(api.client, two)
    assert "Max-Age=43200" in first.headers["set-cookie"]  # 12 h, the default ui_session_max_age


def test_a_login_over_a_live_session_replaces_it(make_api) -> None:
    api = make_api(api_token=TOKEN)
    browser = _browser(api)
    before = _login(browser).cookies[COOKIE]
    after = _login(browser).cookies[COOKIE]
    assert before != after and _opens(api.client, after) and not _opens(api.client, before)


def test_the_cookie_of_the_old_scheme_opens_nothing(make_api) -> None:
    """HMAC(token, constant) was every session's cookie: whoever saw one once had the dashboard for good."""
    api = make_api(api_token=TOKEN)
    _login(api.client)
    old = hmac.new(TOKEN.encode(), b"mao-ui-session-v1", hashlib.sha256).hexdigest()
    assert not _opens(api.client, old)
    assert not _opens(api.client, "") and not _opens(api.client, "x" * 43)


def test_a_cookie_is_refused_after_its_logout_and_only_its_own(make_api) -> None:
    api = make_api(api_token=TOKEN)
    kept = _login(_browser(api)).cookies[COOKIE]
    browser = _browser(api)
    ended = _login(browser).cookies[COOKIE]
    assert _opens(api.client, ended)
    assert browser.post("/ui/logout", headers=OWN).status_code == 303
    assert not _opens(api.client, ended)  # a copy of the cookie (another tab, a thief) is dead too
    assert _opens(api.client, kept)


def test_a_session_ends_when_idle_or_at_its_maximum_age(make_api) -> None:
    api = make_api(api_token=TOKEN, ui_session_idle=600, ui_session_max_age=3600)
    clock = Clock()
    api.client.app.state.ui_sessions = Sessions(clock=clock)
    busy = _login(_browser(api)).cookies[COOKIE]
    idle = _login(_browser(api)).cookies[COOKIE]
    clock.now += 590
    assert _opens(api.client, busy)
    clock.now += 20  # 610 s without a request
    assert not _opens(api.client, idle)
    for _ in range(5):  # in use every 590 s: kept until the maximum age
        assert _opens(api.client, busy)
        clock.now += 590
    assert clock.now - 1000 == 3560
    assert _opens(api.client, busy)
    clock.now += 41
    assert not _opens(api.client, busy)


def test_the_sessions_in_memory_are_bounded() -> None:
    clock = Clock()
    sessions = Sessions(max_sessions=3, clock=clock)
    ids = [sessions.open(max_age=60, idle=60) for _ in range(5)]
    assert len(sessions) == 3
    assert [sessions.valid(i) for i in ids] == [False, False, True, True, True]
    clock.now += 61
    sessions.open(max_age=60, idle=60)
    assert len(sessions) == 1  # the expired ones went with the next login


# ---------------------------------------------------------------------------- throttling


def _throttled(api, clock: Clock) -> FailureThrottle:
    throttle = FailureThrottle(clock=clock)
    api.client.app.state.auth_throttle = throttle
    return throttle


def test_wrong_bearer_tokens_are_throttled_per_client_then_forgiven(make_api) -> None:
    api = make_api(api_token=TOKEN)
    clock = Clock()
    _throttled(api, clock)
    for _ in range(BURST):
        assert api.client.get("/registry/tools", headers=WRONG).status_code == 401
    locked = api.client.get("/registry/tools", headers=WRONG)
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "rate_limited"
    wait = int(locked.headers["Retry-After"])
    assert 1 <= wait <= 60 / FORGIVEN_PER_MINUTE
    # the right token waits too (or the lock would tell a guesser when it found it), but not long
    assert api.client.get("/registry/tools", headers=AUTH).status_code == 429
    other = TestClient(api.client.app, client=("192.0.2.7", 40000))
    assert other.get("/registry/tools", headers=AUTH).status_code == 200  # another client is not locked out
    clock.now += wait
    assert api.client.get("/registry/tools", headers=AUTH).status_code == 200
    assert api.client.get("/registry/tools", headers=WRONG).status_code == 401  # one more try, then the lock
    assert api.client.get("/registry/tools", headers=WRONG).status_code == 429


def test_requests_without_a_token_are_not_guesses(make_api) -> None:
    api = make_api(api_token=TOKEN)
    for _ in range(3 * BURST):
        assert api.client.get("/registry/tools").status_code == 401
    assert api.client.get("/registry/tools", headers=AUTH).status_code == 200


def test_wrong_logins_are_throttled(make_api) -> None:
    api = make_api(api_token=TOKEN)
    clock = Clock()
    _throttled(api, clock)
    for _ in range(BURST):
        assert _login(api.client, "not-it").status_code == 401
    locked = _login(api.client, "not-it")
    assert locked.status_code == 429 and "try again in" in locked.text
    assert COOKIE not in locked.cookies
    assert _login(api.client).status_code == 429  # the right one too, for a few seconds
    clock.now += int(locked.headers["Retry-After"])
    assert _login(api.client).status_code == 303


def test_wrong_tokens_on_health_count_too(make_api) -> None:
    """/health with a token tells a right one from a wrong one: it must not be a free oracle."""
    api = make_api(api_token=TOKEN)
    for _ in range(BURST):
        assert api.client.get("/health", headers=WRONG).status_code == 401
    assert api.client.get("/health", headers=WRONG).status_code == 429
    assert api.client.get("/health").status_code == 200  # the healthcheck sends none: it is not locked out


def test_the_throttle_table_is_bounded_and_groups_ipv6_by_64() -> None:
    throttle = FailureThrottle(max_clients=100)
    for n in range(5000):
        throttle.failed(f"10.{n // 65536}.{n // 256 % 256}.{n % 256}")
    assert len(throttle) <= 100

    def request(host: str) -> SimpleNamespace:
        return SimpleNamespace(client=SimpleNamespace(host=host))

    assert client_of(request("2001:db8:1:2::1")) == client_of(request("2001:db8:1:2:ffff::9")) == "2001:db8:1:2::/64"
    assert client_of(request("2001:db8:1:3::1")) != client_of(request("2001:db8:1:2::1"))
    assert client_of(request("::ffff:192.0.2.1")) == "192.0.2.1"
    assert client_of(request("192.0.2.1")) == "192.0.2.1"


def test_a_served_api_holds_a_guesser_to_its_burst(data_dir, free_port) -> None:
    settings = Settings(instance_name="sec-node", data_dir=data_dir, api_port=free_port(), api_token=TOKEN)
    with Served.api(settings) as server, httpx.Client(base_url=server.url) as client:
        answers = [client.get("/registry/tools", headers={"Authorization": f"Bearer guess-{n}"}) for n in range(50)]
        statuses = [a.status_code for a in answers]
        assert statuses.count(401) <= BURST + 1 and statuses[-1] == 429, statuses
        assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)
