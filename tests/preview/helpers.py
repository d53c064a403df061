"""Helpers of the preview's tests: a copy of the example repository with the posts the
preview must draw right (an Arabic text with a URL and a French hashtag, a machine translation
past X's limit, a post carrying HTML, the example's image post moved into the window), and
where ``diplobot preview`` put its site."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
"""The preview's instant: the example's posts of late November fall in the next 14 days."""
DAYS = 14
CHROMIUM = Path(shutil.which("chromium") or "/usr/bin/chromium")

ARABIC_URL = "https://www.diplomatie.gouv.fr/ar/politique-etrangere/"
ARABIC_POST = f"""\
id: test-arabe-url
lang: fr
publish_at: 2026-11-25 12:00
text: "La France soutient l'initiative pour la paix au Liban #PaixLiban {ARABIC_URL}"
translations:
  ar: "فرنسا تدعم مبادرة السلام في لبنان #PaixLiban {ARABIC_URL} #France"
"""
# Every "nous" and "des" grows in the fake engine's Spanish ("nosotros", "de los"): about 250
# weighted characters of French become well over 280 in Spanish, held with its text.
LONG_POST = (
    "id: test-trop-long\n"
    "lang: fr\n"
    "languages: [fr, es]\n"
    "publish_at: 2026-11-27 10:00\n"
    'text: "' + " ".join(["nous des"] * 31) + '"\n'
)
HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">'
HOSTILE_POST = f"""\
id: test-html
lang: fr
languages: [fr]
publish_at: 2026-11-28 10:00
text: 'Texte avec du HTML : {HOSTILE} fin'
"""


@dataclass(frozen=True)
class Rendered:
    root: Path  # the content repository
    out: Path  # the site
    state: Path

    @property
    def index(self) -> str:
        return (self.out / "index.html").as_uri()

    def page_of(self, post: str) -> str:
        from bot.preview.model import page_name

        return (self.out / page_name(post)).as_uri()


def example_copy(target: Path) -> Path:
    """The example repository with the test posts, and its image post moved into the window."""
    for part in ("content", "schedules"):
        shutil.copytree(ROOT / part, target / part)
    posts = target / "content/posts"
    (posts / "test").mkdir()
    (posts / "test/arabe-url.yaml").write_text(ARABIC_POST, encoding="utf-8")
    (posts / "test/trop-long.yaml").write_text(LONG_POST, encoding="utf-8")
    (posts / "test/html.yaml").write_text(HOSTILE_POST, encoding="utf-8")
    image_post = posts / "2026/12/journee-droits-humains.yaml"
    image_post.write_text(
        image_post.read_text(encoding="utf-8").replace(
            "publish_at: 2026-12-10 10:00", "publish_at: 2026-12-04 10:00"
        ),
        encoding="utf-8",
    )
    return target
