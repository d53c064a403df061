"""Generate a realistic content repository of N posts for the example's accounts (for
benchmarks); with ``--missions M``, M missions besides the central one, about 1,000 accounts in
all at 269 missions (the reference network), the posts spread over them.

    python bench/genrepo.py /tmp/gen --posts 50000 --missions 269
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]

PHRASES = [
    "La France salue l'accord conclu aujourd'hui",
    "Entretien du ministre avec son homologue",
    "La France condamne fermement l'attaque",
    "Journée internationale de la solidarité",
    "Soutien de la France à la société civile",
    "Le Quai d'Orsay appelle au respect du droit international",
    "Nouvelle aide humanitaire acheminée",
    "Ouverture des candidatures aux bourses Eiffel",
]
TAGS = ["#Diplomatie", "#COP31", "#Francophonie", "#DroitsHumains", "#Soudan", "#Liban"]


def post_yaml(rng: random.Random, index: int, start: datetime) -> str:
    text = f"{rng.choice(PHRASES)} ({index}). {rng.choice(PHRASES)}. {rng.choice(TAGS)}"
    if rng.random() < 0.4:
        text += f" https://www.diplomatie.gouv.fr/fr/article-{index}"
    lines = [f"id: bench-{index:05d}", "lang: fr"]
    roll = rng.random()
    if roll < 0.05:
        lines.append(f"slot: {rng.choice(['morning', 'evening'])}")
    elif roll < 0.07:
        pass  # a draft
    else:
        due = start + timedelta(days=rng.randrange(365), minutes=rng.randrange(8 * 60, 20 * 60))
        lines.append(f"publish_at: {due:%Y-%m-%d %H:%M}")
    lines.append(f'text: "{text}"')
    if rng.random() < 0.3:
        lines.append("translations:")
        lines.append(f'  en: "Statement number {index}. France welcomes the agreement. #Diplomacy"')
    if rng.random() < 0.1:
        lines.append("media:")
        lines.append("  - file: media/drapeau.png")
        lines.append('    alt: "Drapeau français"')
    if rng.random() < 0.1:
        lines.append("thread:")
        lines.append(f'  - text: "Suite du fil {index}, avec les détails. 2/2"')
    return "\n".join(lines) + "\n"


def generate(target: Path, count: int, seed: int = 7, missions: int = 0) -> Path:
    """Write ``count`` posts plus the example's schedules into ``target`` (replaced); with
    ``missions``, that many missions too (see :func:`add_missions`), which take 90 % of the
    posts."""
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(ROOT / "schedules", target / "schedules")
    (target / "content/media").mkdir(parents=True)
    shutil.copy(ROOT / "content/media/drapeau.png", target / "content/media/drapeau.png")
    shutil.copy(ROOT / "content/glossary.yaml", target / "content/glossary.yaml")
    slots = (target / "schedules/slots.yaml").read_text(encoding="utf-8")
    (target / "schedules/slots.yaml").write_text(
        slots.replace("    times: [18:30]\n", "    times: [18:30]\n    capacity: 3\n"),
        encoding="utf-8",
    )
    (target / "schedules/accounts.yaml").write_text(
        (target / "schedules/accounts.yaml")
        .read_text(encoding="utf-8")
        .replace("daily_cap: 6", "daily_cap: 60"),
        encoding="utf-8",
    )
    rng = random.Random(seed)
    # Tomorrow (UTC midnight): no post is past due when a benchmark runs, whatever the day. A
    # fixed date let the past-due share grow day by day (a week after it, 2 % of the posts:
    # ~4,400 deliveries at 50k expired, each with its alert, during the "idle" window).
    start = datetime.combine(datetime.now(UTC).date() + timedelta(days=1), datetime.min.time())
    central = count if not missions else count // 10
    for i in range(central):
        folder = target / "content/posts" / f"{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        body = post_yaml(rng, i, start)
        if missions:
            body += amplify_yaml(rng, missions)
        (folder / f"post-{i:05d}.yaml").write_text(body, encoding="utf-8")
    if missions:
        add_missions(target, missions, count - central, rng, start)
    return target


ZONES = [
    "Asia/Shanghai",
    "America/New_York",
    "Africa/Dakar",
    "Europe/Berlin",
    "Asia/Tokyo",
    "America/Sao_Paulo",
    "Asia/Beirut",
    "Africa/Nairobi",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Europe/Madrid",
    "America/Mexico_City",
]
LOCAL = ["es", "ar", "zh-Hans", "ru", "pt", "de", "it", "ja", "ko", "tr", "fa", "hi", "sw"]
"""With fr and en, the fifteen languages of the reference network."""
ACCOUNTS_TOTAL = 1000
"""Accounts in all (the central ones included) at 269 missions; fewer missions, fewer each."""


def commit_origin(repo: Path) -> Path:
    """Make ``repo`` a git repository of one commit, as a remote serves it: packed, and on
    disk. Without this the first clone timed after it races git's own upkeep: with more than
    6,700 loose objects (every repository of 10,000 posts) ``git commit`` starts ``gc --auto``
    in the background, which took 2.8 s of a 10k first sync's 4.8 s on the project's machine;
    and the kernel is still writing the generated files out. ``gc.auto=0``: the edits the
    benchmarks commit later start no collection either (``git commit`` reads it from here)."""
    for args in (
        ["init", "-q", "-b", "main"],
        ["config", "gc.auto", "0"],
        ["add", "-A"],
        ["-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "start"],
        ["gc", "-q"],
    ):
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)
    os.sync()
    return repo


def mission_name(i: int) -> str:
    return f"ambassade-{i:03d}"


def amplify_yaml(rng: random.Random, missions: int) -> str:
    """Now and then a central post amplified: by every mission (reposts where the platform
    can, else copies), or copied by a few."""
    roll = rng.random()
    if roll < 0.02:
        return "amplify: all\n"
    if roll < 0.04:
        chosen = sorted(rng.sample(range(missions), min(3, missions)))
        names = ", ".join(mission_name(i) for i in chosen)
        return f"amplify: {{missions: [{names}], how: copy}}\n"
    return ""


def _account(i: int, k: int, lang: str) -> tuple[str, str]:
    """The ``k``-th account of mission ``i`` (its id, and its line in accounts.yaml)."""
    aid = f"m{i:03d}_{k}"
    handle = f"amb{i:03d}{k}{lang[:2]}"
    platform = (
        "x" if k < 2 else ["x", "mastodon", "bluesky", "facebook", "telegram", "weibo"][(i + k) % 6]
    )
    extra = ""
    if platform == "mastodon":
        extra = ", instance: https://social.example.org"
    elif platform == "bluesky":
        handle = f"amb{i:03d}-{k}.bsky.social"
    elif platform == "facebook":
        extra = f', page: "{100000 + i * 10 + k}"'
    elif platform == "telegram":
        handle = f"amb{i:03d}chan{k}"
    line = f"  {aid}: {{lang: {lang}, platform: {platform}, handle: {handle}{extra}}}\n"
    return aid, line


def add_missions(
    target: Path, missions: int, count: int, rng: random.Random, start: datetime
) -> None:
    """``missions`` folders under missions/, about ``ACCOUNTS_TOTAL`` accounts in all (3 or 4
    each at 269 missions: fr and en on X, one or two in a local language on X or another
    platform), a slot per mission, a glossary in one of ten, ``count`` posts spread evenly."""
    # 3 accounts each, and a fourth for some (spread evenly): at 269 missions, with the
    # example's central ones, 1,000 accounts.
    central = yaml.safe_load((target / "schedules/accounts.yaml").read_text(encoding="utf-8"))
    fourth = ACCOUNTS_TOTAL - len(central["accounts"]) - 3 * 269
    for i in range(missions):
        home = target / "missions" / mission_name(i)
        (home / "media").mkdir(parents=True)
        shutil.copy(ROOT / "content/media/drapeau.png", home / "media/drapeau.png")
        langs = ["fr", "en", LOCAL[i % len(LOCAL)]]
        if (i + 1) * fourth // 269 > i * fourth // 269:
            langs.append(LOCAL[(i + 5) % len(LOCAL)])
        lines = [_account(i, k, lang)[1] for k, lang in enumerate(langs)]
        (home / "accounts.yaml").write_text(
            f"timezone: {ZONES[i % len(ZONES)]}\ndaily_cap: 60\naccounts:\n" + "".join(lines),
            encoding="utf-8",
        )
        (home / "slots.yaml").write_text(
            "slots:\n  matin:\n    days: [mon, tue, wed, thu, fri]\n    times: [09:00]\n"
            "    capacity: 3\n",
            encoding="utf-8",
        )
        if i % 10 == 0:
            (home / "glossary.yaml").write_text(
                "terms:\n  - term: Quai d'Orsay\n    translations:\n"
                "      en: the French Foreign Ministry\n",
                encoding="utf-8",
            )
    for n in range(count):
        i = n % missions
        index = 100_000 + n
        body = (
            post_yaml(rng, index, start)
            .replace("slot: morning", "slot: matin")
            .replace("slot: evening", "slot: matin")
        )
        body = body.split("\n", 1)[1]  # no id: the mission's default, <mission>/<path>
        folder = target / "missions" / mission_name(i) / "posts" / f"{(n // missions) // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"post-{index:06d}.yaml").write_text(body, encoding="utf-8")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", type=Path)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument(
        "--missions",
        type=int,
        default=0,
        help="missions besides the central one (269: the network)",
    )
    args = parser.parse_args()
    print(generate(args.target, args.posts, missions=args.missions))
