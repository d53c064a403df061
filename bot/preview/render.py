"""The preview model → a static site: ``index.html`` (the calendar, drafts and held posts, the
schedule's changes) and one page per post (its cards), from Jinja2 templates shipped in
``bot/preview/templates/``. Autoescaping is on for every template: the text of a post, an alt
text, a reason or a file name is untrusted input and is always drawn as text (a ``<script>``
in a post shows as ``<script>``). The CSS is inline; no page loads anything from elsewhere,
so the site opens from ``file://`` and from the service's ``/preview`` alike.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup, escape

from bot.errors import Problem, PublishRejected
from bot.preview.model import Preview, Text
from bot.publish.media import MediaSource

INDEX = "index.html"


@dataclass(slots=True)
class Site:
    """The pages (file name → HTML) and the images to put beside them (site path → the file's
    path in the content repository, ``content/media/x.png``)."""

    pages: dict[str, str] = field(default_factory=dict)
    assets: dict[str, str] = field(default_factory=dict)

    def write(self, out: Path, media: MediaSource) -> list[str]:
        """Write the site into ``out`` (created; what an earlier preview left is replaced),
        the images read from ``media`` as publishing reads them. Returns why each image that
        could not be read is missing (its card then shows the alt text without the image)."""
        out.mkdir(parents=True, exist_ok=True)
        old_files = out / "files"
        if old_files.is_dir():
            shutil.rmtree(old_files)
        for stale in out.glob("post-*.html"):
            stale.unlink()
        for name, html in self.pages.items():
            (out / name).write_text(html, encoding="utf-8")
        base = out.resolve()
        missing = []
        for name, file in self.assets.items():
            target = out / name
            if not target.resolve().is_relative_to(base):  # never outside the site
                continue
            try:
                data = media.read(file)
            except PublishRejected as exc:
                missing.append(str(exc))
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        return missing


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("bot.preview", "templates"),
        autoescape=True,  # every template, whatever its name: post text is untrusted
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["paragraphs"] = paragraphs
    return env


def paragraphs(text: Text, platform: str = "") -> Markup:
    """A text's paragraphs as HTML, each ``<p dir="auto">``; entities in ``<span>``s of their
    kind (isolated: ``dir="auto"``), what lies past the limit in ``<mark class="over">``.

    Built here rather than in the template because it is the innermost loop of every page
    (10,000 cards: a third of the site's time in Jinja's own loop); every piece of text goes
    through :func:`markupsafe.escape`, as autoescaping would."""
    title = escape(f"past the limit: {platform} would cut here")
    out: list[str] = []
    for para in text.paragraphs:
        html: list[str] = []
        for piece in para:
            body = escape(piece.text)
            if piece.kind:
                body = Markup(f'<span class="{piece.kind}" dir="auto">{body}</span>')
            if piece.over:
                body = Markup(f'<mark class="over" title="{title}">{body}</mark>')
            html.append(body)
        out.append('<p dir="auto">' + "".join(html) + "</p>")
    return Markup("".join(out))


def render(preview: Preview, *, generated: datetime | None = None) -> Site:
    """Every page of ``preview``, and the images they show (to be read when written)."""
    env = environment()
    stamp = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    common = {"preview": preview, "generated": stamp}
    site = Site()
    site.pages[INDEX] = env.get_template("index.html").render(**common)
    post_template = env.get_template("post.html")
    for page in preview.posts:
        site.pages[page.page] = post_template.render(page=page, **common)
        for card in page.cards:
            for part in card.parts:
                for image in part.images:
                    site.assets.setdefault(image.src, image.path)
    return site


def render_problems(problems: Sequence[Problem], *, generated: datetime | None = None) -> Site:
    """The site of a repository that cannot be previewed: its problems, file by file, each
    with its ``file:line`` (what a pull request's artifact shows instead of the cards)."""
    stamp = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    files: dict[str, list[Problem]] = {}
    for p in problems:
        files.setdefault(p.path, []).append(p)
    page = (
        environment()
        .get_template("errors.html")
        .render(files=sorted(files.items()), generated=stamp)
    )
    return Site(pages={INDEX: page})


def file_url(out: Path) -> str:
    """The address to open the written site in a browser."""
    return (out.resolve() / INDEX).as_uri()
