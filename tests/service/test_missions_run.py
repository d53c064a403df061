"""``diplobot run`` on a repository with two missions, publishing to the fake X: each
mission's post reaches its own accounts only, a central post copied by a mission reaches both,
one it reposts is reposted by the mission's X accounts once published, and
``/status?mission=`` and ``/metrics`` tell them apart."""

from __future__ import annotations

import json
import time

import yaml
from prometheus_client.parser import text_string_to_metric_families
from servers.x import XServer
from service.conftest import ContentRepo, ServiceFactory, due_in, wait_for

MISSION = "poste-beyrouth"
MINE = ("francediplo_AR", "francediplo_ES")
CENTRAL = ("francediplo", "francediplo_EN")


def _split(repo: ContentRepo) -> None:
    """The Arabic and Spanish X accounts move from the central accounts to a mission's."""
    central = repo.path / "schedules/accounts.yaml"
    data = yaml.safe_load(central.read_text(encoding="utf-8"))
    moved = {a: data["accounts"].pop(a) for a in MINE}
    central.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    repo.write(
        f"missions/{MISSION}/accounts.yaml",
        yaml.safe_dump({"timezone": "Asia/Beirut", "accounts": moved}, sort_keys=False),
    )


def _post(post_id: str, due: str, text: str, langs: dict[str, str], extra: str = "") -> str:
    lines = [f"id: {post_id}", "lang: fr", f"publish_at: {due}", f"text: {json.dumps(text)}"]
    lines.append("translations:")
    lines += [f"  {lang}: {json.dumps(f'{text} [{tag}]')}" for lang, tag in langs.items()]
    return "\n".join(lines) + "\n" + extra


def test_each_missions_posts_go_to_its_accounts_and_amplified_ones_to_both(
    content_repo: ContentRepo, service: ServiceFactory, x: XServer
) -> None:
    _split(content_repo)
    due = due_in(5).isoformat(timespec="seconds")
    content_repo.write(
        f"missions/{MISSION}/posts/visite.yaml",
        _post("visite", due, "Visite au Liban", {"ar": "AR", "es": "ES"}),
    )
    content_repo.write(
        "content/posts/climat.yaml",
        _post(
            "climat",
            due,
            "Accord climat",
            {"en": "EN", "ar": "AR", "es": "ES"},
            "amplify: {missions: all, how: copy}\n",
        ),
    )
    content_repo.write(
        "content/posts/relais.yaml",
        _post("relais", due, "Relais central", {"en": "EN"}, "amplify: all\n"),
    )
    rev = content_repo.commit("a mission, its post, a central post it copies, one it reposts")
    svc = service()
    svc.start()
    wait_for("the commit to be applied", lambda: svc.status()["revision"] == rev)

    def on(text: str) -> dict[str, int]:
        return {
            a: sum(1 for t in x.timeline(a) if t["text"].startswith(text))
            for a in (*CENTRAL, *MINE)
        }

    wait_for("the mission's post", lambda: all(on("Visite au Liban")[a] for a in MINE))
    wait_for("the copies", lambda: all(on("Accord climat").values()), timeout=20)
    # Reposts: the mission's X accounts (ar, es: no central X account in their language)
    # repost the central mission's first X account's post, once it is published.
    original = wait_for(
        "the central post",
        lambda: [
            t["id"] for t in x.timeline("francediplo") if t["text"].startswith("Relais central")
        ],
    )
    wait_for("the reposts", lambda: all(x.reposts(a) == original for a in MINE), timeout=20)
    time.sleep(1.5)  # two more sweeps: nothing is sent again
    assert on("Visite au Liban") == {
        "francediplo": 0,
        "francediplo_EN": 0,
        **dict.fromkeys(MINE, 1),
    }
    assert on("Accord climat") == dict.fromkeys((*CENTRAL, *MINE), 1)
    assert [t["text"] for t in x.timeline("francediplo_AR") if "climat" in t["text"]] == [
        "Accord climat [AR]"
    ]
    # One mission's view of the service.
    code, body = svc.get(f"/status?mission={MISSION}")
    assert code == 200
    mine = json.loads(body)
    assert mine["mission"] == MISSION
    assert {r["account"] for r in mine["recent"]} == set(MINE)
    assert set(mine["counts"]["POSTED"]) == set(MINE)
    assert svc.get("/status?mission=nowhere")[0] == 404
    code, metrics = svc.get("/metrics")
    assert code == 200
    posted = {
        (s.labels["account"], s.labels["mission"]): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
        if s.name == "diplobot_deliveries" and s.labels["state"] == "POSTED"
    }
    assert posted == {
        ("francediplo", "central"): 2,
        ("francediplo_EN", "central"): 2,
        ("francediplo_AR", MISSION): 3,
        ("francediplo_ES", MISSION): 3,
    }
    assert on("Relais central") == {"francediplo": 1, "francediplo_EN": 1, **dict.fromkeys(MINE, 0)}
    assert {a: x.reposts(a) for a in MINE} == dict.fromkeys(MINE, original)
