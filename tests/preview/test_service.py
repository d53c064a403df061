"""``/preview`` on the service: the same site, of the revision it runs, read-only; off with
``DIPLOBOT_PREVIEW=off``."""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from preview.helpers import ROOT, example_copy
from servers.translate import LibreServer

from bot.http import serve
from bot.preview.model import page_name
from bot.service import Service
from bot.settings import ServiceSettings, Settings
from bot.source import LocalSource
from bot.state import open_store
from bot.wiring import Wiring


def _service(tmp_path: Path, libre: LibreServer, *, preview: bool = True) -> Service:
    """The service on a copy of the example plus one post due the day after tomorrow (the
    example's dates are fixed; the service plans from the real clock)."""
    root = example_copy(tmp_path / "repo")
    due = (datetime.now(UTC) + timedelta(days=2)).replace(second=0, microsecond=0)
    (root / "content/posts/test/bientot.yaml").write_text(
        "id: bientot\nlang: fr\n"
        f"publish_at: {due:%Y-%m-%dT%H:%M}Z\n"
        'text: "La France salue l\'accord #Paix https://www.diplomatie.gouv.fr/fr/"\n'
        "media:\n  - file: media/drapeau.png\n    alt: Drapeau français\n",
        encoding="utf-8",
    )
    settings = Settings.from_env(
        {"DIPLOBOT_TRANSLATOR": "libre", "DIPLOBOT_TRANSLATOR_URL": libre.url}
    )
    state = tmp_path / "state"
    state.mkdir()
    store = open_store(f"sqlite:///{state / 'state.sqlite'}")
    service = Service(
        LocalSource(root),
        store,
        state,
        ServiceSettings(http_addr="127.0.0.1:0", preview=preview),
        wiring=Wiring(settings),
        dry_run=True,
    )
    service.sync()
    assert service.content is not None, service.problems
    return service


@pytest.fixture
def served(tmp_path: Path, libre: LibreServer) -> Iterator[tuple[Service, int]]:
    service = _service(tmp_path, libre)
    server, _thread = serve(service, "127.0.0.1:0")
    try:
        yield service, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_service_serves_the_preview_of_its_revision(
    served: tuple[Service, int], libre: LibreServer
) -> None:
    """/preview redirects to /preview/, the calendar shows the post due soon on every
    account, its page has the cards with the machine translations, the image is served, and
    every answer forbids scripts and outside loads."""
    service, port = served
    status, headers, _ = _get(port, "/preview")
    assert (status, headers["Location"]) == (301, "/preview/")
    status, headers, body = _get(port, "/preview/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    html = body.decode()
    assert service.revision is not None and service.revision[:12] in html
    accounts = len(service.content.accounts.accounts) if service.content else 0
    assert accounts > 4  # the example's X accounts and its other platforms'
    assert html.count('data-post="bientot"') == accounts
    status, _, body = _get(port, "/preview/" + page_name("bientot"))
    assert status == 200
    page = body.decode()
    assert page.count('<article class="card') == accounts
    assert "machine" in page and "https://www.diplomatie.gouv.fr/fr/" in page
    assert "ترحب" in page  # "salue", as the fake engine puts it in Arabic
    asked = [c.params.get("q", "") for c in libre.calls]  # a text, or a batch of texts
    assert any("salue" in text for q in asked for text in (q if isinstance(q, list) else [q]))
    assert 'src="files/media/drapeau.png"' in page
    status, headers, body = _get(port, "/preview/files/media/drapeau.png")
    assert (status, headers["Content-Type"]) == (200, "image/png")
    assert body == (ROOT / "content/media/drapeau.png").read_bytes()


def test_the_preview_serves_only_its_own_files(served: tuple[Service, int]) -> None:
    """A path outside the site's pages and images is 404, whatever it points at."""
    _service, port = served
    for path in (
        "/preview/../state.sqlite",
        "/preview/%2e%2e/state/state.sqlite",
        "/preview/files/../../schedules/accounts.yaml",
        "/preview/files/media/nope.png",
        "/preview/index.html/x",
    ):
        status, _, _ = _get(port, path)
        assert status == 404, path


def test_the_preview_is_off_with_diplobot_preview_off(tmp_path: Path, libre: LibreServer) -> None:
    """DIPLOBOT_PREVIEW=off: /preview/ answers 404 and says how it was turned off."""
    assert ServiceSettings.from_env({"DIPLOBOT_PREVIEW": "off"}).preview is False
    service = _service(tmp_path, libre, preview=False)
    server, _thread = serve(service, "127.0.0.1:0")
    try:
        status, _, body = _get(server.server_address[1], "/preview/")
    finally:
        server.shutdown()
        server.server_close()
    assert status == 404
    assert b"DIPLOBOT_PREVIEW=off" in body
