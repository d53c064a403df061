"""Images attached to posts: present, real images, small enough, few enough, inside content/."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

POST = "content/posts/bad.yaml"
Check = Callable[..., Any]  # the `check` fixture of conftest.py
PNG = b"\x89PNG\r\n\x1a\n"


def media_post(*files: str) -> str:
    """A post attaching ``files`` (paths as written in the post)."""
    return "lang: fr\ntext: Bonjour\nmedia:\n" + "".join(f"  - file: {f}\n" for f in files)


def assert_media_error(check: Check, file: str, *words: str, line: int = 4) -> None:
    """Attaching ``file`` fails with one error on its `file:` value saying ``words``."""
    result = check({POST: media_post(file)})
    assert result.code == 1, result.out
    where, text = result.only_error()
    assert where == f"{POST}:{line}:11"
    for word in words:
        assert word in text


def test_missing_media_file_is_reported(check: Check) -> None:
    """A path to no file says so and reminds that paths are relative to content/."""
    assert_media_error(
        check, "media/absent.png", "media file 'media/absent.png' not found", "relative to content/"
    )


def test_text_file_named_jpg_is_not_an_image(example_repo: Path, check: Check) -> None:
    """The file's bytes decide, not its name: a text file called .jpg is refused."""
    (example_repo / "content/media/note.jpg").write_text("not a picture\n", encoding="utf-8")
    assert_media_error(
        check,
        "media/note.jpg",
        "'media/note.jpg' is not an image X accepts",
        "JPEG, PNG, GIF or WEBP",
    )


def test_image_over_5_mb_is_refused_with_its_size(example_repo: Path, check: Check) -> None:
    """A 6 MB PNG (sparse: written in an instant) is over X's 5 MB limit."""
    with (example_repo / "content/media/huge.png").open("wb") as handle:
        handle.write(PNG)
        handle.truncate(6 * 1024 * 1024)
    assert_media_error(
        check, "media/huge.png", "image 'media/huge.png' is 6.0 MB; X accepts at most 5 MB"
    )


def test_image_of_exactly_5_mb_is_accepted(example_repo: Path, check: Check) -> None:
    """5 MB is the limit itself."""
    with (example_repo / "content/media/max.png").open("wb") as handle:
        handle.write(PNG)
        handle.truncate(5 * 1024 * 1024)
    result = check({POST: media_post("media/max.png")})
    assert result.code == 0, result.out


def test_more_than_4_images_is_refused_at_the_fifth(check: Check) -> None:
    """X takes 4 images per post: the fifth is pointed at, and the hint offers a thread."""
    result = check({POST: media_post(*["media/drapeau.png"] * 5)})
    assert result.code == 1
    assert result.only_error() == (
        f"{POST}:8:5",
        "5 images; X takes at most 4 per post (move the others to a thread part)",
    )


@pytest.mark.parametrize(
    ("file", "words"),
    [
        pytest.param("../x.png", ["media path '../x.png' leaves content/"], id="parent-of-content"),
        pytest.param(
            "../../x.png", ["media path '../../x.png' leaves the repository"], id="parent-of-repo"
        ),
        pytest.param("media/../../../x.png", ["leaves the repository"], id="dot-dot-in-the-middle"),
        pytest.param("/etc/hostname", ["media path '/etc/hostname' is absolute"], id="absolute"),
    ],
)
def test_media_path_leaving_content_is_refused(
    example_repo: Path, check: Check, file: str, words: list[str]
) -> None:
    """A path out of content/ is refused even when a real image waits there."""
    image = (example_repo / "content/media/drapeau.png").read_bytes()
    (example_repo / "x.png").write_bytes(image)  # ../x.png exists: refused all the same
    (example_repo.parent / "x.png").write_bytes(image)  # ../../x.png too
    assert_media_error(check, file, *words, "use a path relative to content/")


def test_symlink_in_media_pointing_outside_the_repo_is_refused(
    example_repo: Path, tmp_path: Path, check: Check
) -> None:
    """A link inside content/media to an image outside the repository is refused."""
    outside = tmp_path / "outside.png"
    outside.write_bytes((example_repo / "content/media/drapeau.png").read_bytes())
    os.symlink(outside, example_repo / "content/media/linked.png")
    assert_media_error(
        check,
        "media/linked.png",
        "media file 'media/linked.png' is a link to a place outside the repository",
        "copy the image into content/media/",
    )


def test_symlink_to_an_image_inside_content_is_accepted(example_repo: Path, check: Check) -> None:
    """A link that stays inside the repository is just another path to the image."""
    os.symlink("drapeau.png", example_repo / "content/media/alias.png")
    result = check({POST: media_post("media/alias.png")})
    assert result.code == 0, result.out


def test_media_errors_in_a_thread_part_point_at_that_part(check: Check) -> None:
    """Thread parts' images are checked too, located in the part."""
    body = "lang: fr\ntext: Un\nthread:\n  - text: Deux\n    media:\n      - file: media/nope.png\n"
    result = check({POST: body})
    assert result.code == 1
    assert result.only_error()[0] == f"{POST}:6:15"
    assert "media file 'media/nope.png' not found" in result.only_error()[1]
