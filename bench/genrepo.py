"""Generate a realistic content repository of N posts for 4 accounts (for benchmarks)."""

from __future__ import annotations

import argparse
import random
import shutil
from datetime import datetime, timedelta
from pathlib import Path

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


def generate(target: Path, count: int, seed: int = 7) -> Path:
    """Write ``count`` posts plus the example's schedules into ``target`` (replaced)."""
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
    start = datetime(2026, 11, 24)
    for i in range(count):
        folder = target / "content/posts" / f"{i // 500:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"post-{i:05d}.yaml").write_text(post_yaml(rng, i, start), encoding="utf-8")
    return target


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("target", type=Path)
    parser.add_argument("--posts", type=int, default=10_000)
    args = parser.parse_args()
    print(generate(args.target, args.posts))
