"""The ``diplobot`` command: parses arguments, calls the core, maps errors to exit codes.

Exit codes: 0 success, 1 the content (or the text) is invalid, or a delivery or the state
database needs attention, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot import __version__
from bot.errors import BotError, ConfigError, ContentError
from bot.settings import Settings, from_process

if TYPE_CHECKING:
    from bot.content.types import ContentSet
    from bot.preview.changes import Since
    from bot.publish.session import Publishing
    from bot.state import Store
    from bot.wiring import Wiring

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2
_PURE = ("validate", "count")
"""Commands that only read files and print: they log nothing, so logging is not set up."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    # Global options are accepted before or after the command: `diplobot --root X plan` and
    # `diplobot plan --root X` both work (the subcommand's copy only overrides when given).
    common = _Parser(add_help=False)
    common.add_argument(
        "--root",
        default=argparse.SUPPRESS,
        help="content repository (default: . or $DIPLOBOT_ROOT)",
    )
    common.add_argument(
        "--state",
        default=argparse.SUPPRESS,
        help="state database (default: ROOT/.diplobot/state.sqlite or $DIPLOBOT_STATE)",
    )
    parser = _Parser(
        prog="diplobot", description=__doc__.splitlines()[0] if __doc__ else None, parents=[common]
    )
    parser.add_argument("--version", action="version", version=f"diplobot {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("validate", parents=[common], help="check the whole content repository")
    p.add_argument("--format", choices=("text", "json", "github"), default="text")
    _mission_option(p, "show only the problems in this mission's files (all are checked)")
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=min(2, os.cpu_count() or 1),
        help="processes checking post files (default: 2 on a machine with 2 cores or more)",
    )
    p.add_argument(
        "--no-cache",
        action="store_true",
        help="read every post file (default: reuse, from .diplobot/validate-cache.json, what "
        "the last run found for the files git says are unchanged)",
    )

    p = sub.add_parser("count", parents=[common], help="X weighted length of a text")
    p.add_argument("text", help="the text ('-' reads standard input)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser(
        "plan", parents=[common], help="upcoming deliveries per account, in local time"
    )
    p.add_argument("--days", type=_positive_int, default=7)
    p.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    p.add_argument(
        "--from",
        dest="start",
        metavar="DATETIME",
        help="plan as if it were this UTC time (YYYY-MM-DD HH:MM); nothing is saved",
    )
    p.add_argument(
        "--changed-since",
        metavar="REF",
        help="with --format markdown: what the change since the git commit REF adds, moves "
        "or cancels, per account (a pull request's comment); nothing is saved",
    )
    _mission_option(p, "only this mission's accounts")

    p = sub.add_parser(
        "preview",
        parents=[common],
        help="write a static site showing every post as each account's platform shows it",
    )
    p.add_argument("--out", metavar="DIR", help="where (default: ROOT/.diplobot/preview)")
    p.add_argument("--days", type=_positive_int, default=14)
    p.add_argument(
        "--changed-since",
        metavar="REF",
        help="only the posts whose files changed since the git commit REF, and what the "
        "change does to the schedule",
    )
    p.add_argument(
        "--from",
        dest="start",
        metavar="DATETIME",
        help="as if it were this UTC time (YYYY-MM-DD HH:MM)",
    )
    _mission_option(p, "only this mission's accounts and posts")

    p = sub.add_parser(
        "translate", parents=[common], help="show (or write into the files) each post's variants"
    )
    p.add_argument("ids", nargs="*", metavar="ID", help="posts (default: all)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--write",
        action="store_true",
        help="write machine translations into the post files for review",
    )

    p = sub.add_parser("post-now", parents=[common], help="publish a post now, through the ledger")
    p.add_argument("id", help="the post's id")
    p.add_argument("--lang", type=_langs, help="only these languages, e.g. fr,en")
    p.add_argument(
        "--dry-run", action="store_true", help="write to the outbox, not to the platforms"
    )
    p.add_argument("--account", help="only this account (its id in accounts.yaml)")
    p.add_argument(
        "--resend",
        action="store_true",
        help="with --account: send again what is UNKNOWN there (you checked it is not "
        "published: Telegram), or make a Weibo task again",
    )

    p = sub.add_parser(
        "mark-posted",
        parents=[common],
        help="record a delivery a person published or found (Weibo; Telegram's UNKNOWN)",
    )
    p.add_argument("id", help="the post's id")
    p.add_argument("--account", required=True, help="the account's id in accounts.yaml")
    p.add_argument("--url", required=True, help="the published post's link")
    p.add_argument("--part", type=_positive_int, help="the part (when several are open)")

    p = sub.add_parser("status", parents=[common], help="ledger state of every delivery")
    p.add_argument("id", nargs="?", help="only this post")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _mission_option(p, "only the deliveries of this mission's accounts")

    p = sub.add_parser(
        "retract", parents=[common], help="delete what was published, cancel what was not"
    )
    p.add_argument("id", help="the post's id")
    p.add_argument("--lang", type=_langs, help="only these languages, e.g. fr,en")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")

    p = sub.add_parser("accounts", parents=[common], help="account tools")
    p.add_argument("action", choices=("check",), help="check: credentials work, handles match")

    p = sub.add_parser("run", parents=[common], help="the long-running service")
    p.add_argument("--dry-run", action="store_true", help="publish every account to the outbox")

    p = sub.add_parser(
        "health", parents=[common], help="exit 0 when the running service answers /healthz"
    )

    for name, what in (("pause", "stop publishing"), ("resume", "publish again")):
        p = sub.add_parser(name, parents=[common], help=f"{what} (one account, or all)")
        p.add_argument("account", nargs="?", help="account id (default: every account)")
        if name == "pause":
            p.add_argument("--reason", default="", help="shown in status and the plan")

    p = sub.add_parser("schema", parents=[common], help="write the JSON Schemas editors' tools use")
    p.add_argument("directory", nargs="?", help="where to write (default: print post schema)")
    return parser


def _mission_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "--mission",
        metavar="NAME",
        help=f"{what} (a folder under missions/, or the central mission's name)",
    )


def _mission(content: ContentSet, name: str | None) -> str | None:
    """``--mission``: a mission of ``content`` (None: all)."""
    if (
        name is None
        or name in content.missions
        or (not content.missions and name == content.central)
    ):
        return name
    known = ", ".join(content.missions) or content.central
    raise ConfigError(f"--mission {name}: no such mission; missions: {known}")


def _langs(value: str) -> list[str]:
    langs = [v.strip() for v in value.split(",") if v.strip()]
    if not langs:
        raise argparse.ArgumentTypeError("give languages like fr,en")
    return langs


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not a whole number") from None
    if not 1 <= number <= 3660:
        raise argparse.ArgumentTypeError("must be between 1 and 3660")
    return number


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = from_process()  # the one read of the environment
    except ConfigError as exc:
        print(f"diplobot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args.settings = settings
    # Not parser defaults: the --root/--state actions are shared with every subcommand, and a
    # default there would overwrite a value given before the command.
    if not hasattr(args, "root"):
        args.root = settings.root
    if not hasattr(args, "state"):
        args.state = settings.state
    # `run` may clone into a root that does not exist yet; `health` only talks HTTP.
    if args.command not in ("run", "health") and not Path(args.root).is_dir():
        print(f"diplobot: --root {args.root}: no such directory", file=sys.stderr)
        return EXIT_USAGE
    if args.command not in _PURE:
        from bot.log import setup_logging  # loguru: ~40 ms, for the commands that log

        setup_logging(settings.log.level, settings.log.format)
    try:
        handler = _COMMANDS[args.command]
        return handler(args)
    except ContentError as exc:
        from bot.content.report import render_problems

        print(render_problems(exc.problems), file=sys.stderr)
        return EXIT_INVALID
    except ConfigError as exc:
        print(f"diplobot: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BotError as exc:
        print(f"diplobot: {exc}", file=sys.stderr)
        return EXIT_INVALID
    except Exception as exc:
        problem = _state_problem(exc, args)
        if problem is None:
            raise
        print(f"diplobot: {problem}", file=sys.stderr)
        return EXIT_INVALID


def _state_problem(exc: Exception, args: argparse.Namespace) -> str | None:
    """The message for a database error met after the state was opened (a page damaged in
    the middle of the file is only found when it is read); None for other errors."""
    if "bot.state" not in sys.modules:  # the state was never opened
        return None
    from bot.state import database_problem, state_url

    try:
        url = state_url(Path(args.root), args.state)
    except ConfigError:
        url = str(args.state)
    problem = database_problem(exc, url)
    return str(problem) if problem is not None else None


def _settings(args: argparse.Namespace) -> Settings:
    """This process's settings, read by :func:`main`."""
    settings: Settings = args.settings
    return settings


def _wiring(args: argparse.Namespace) -> Wiring:
    from bot.wiring import Wiring

    return Wiring(_settings(args))


def _store(args: argparse.Namespace, *, create: bool = True) -> Store | None:
    """The state database; with ``create=False``, None when it does not exist yet."""
    from bot.state import state_exists, state_url

    url = state_url(Path(args.root), args.state)
    if not create and not state_exists(url):
        return None
    return _wiring(args).store(url)


def _cmd_validate(args: argparse.Namespace) -> int:
    from bot.content.loader import check
    from bot.content.report import render_problems

    # A short-lived process whose checks make next to no cyclic garbage: the collector would
    # only walk the growing set of checked posts again and again (~10 % of the time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        valid, problems = check(args.root, jobs=args.jobs, cache=not args.no_cache)
    finally:
        if collecting:
            gc.enable()
    elsewhere = 0
    if args.mission is not None:
        from bot.content.types import mission_of_path

        # A folder under missions/, else the central mission (content/, schedules/).
        folder = Path(args.root) / "missions" / args.mission
        wanted = args.mission if folder.is_dir() else None
        mine = [p for p in problems if mission_of_path(p.path) == wanted]
        elsewhere = sum(p.severity == "error" for p in problems) - sum(
            p.severity == "error" for p in mine
        )
        problems = mine
    rendered = render_problems(problems, args.format)
    if args.format == "json" and args.mission is not None:
        # The mission's problems; whether the repository is valid, and how many errors the
        # other missions have.
        shown = json.loads(rendered)
        rendered = json.dumps(
            {**shown, "valid": valid, "mission": args.mission, "errors_elsewhere": elsewhere},
            ensure_ascii=False,
            indent=2,
        )
    if rendered:
        print(rendered)
    if elsewhere:
        print(
            f"{elsewhere} error(s) in other missions' files: the repository publishes only "
            "when every mission is valid",
            file=sys.stderr,
        )
    return EXIT_OK if valid else EXIT_INVALID


def _cmd_count(args: argparse.Namespace) -> int:
    from bot.text import measure

    text = sys.stdin.read() if args.text == "-" else args.text
    m = measure(text)
    if args.format == "json":
        print(json.dumps({"weighted_length": m.weighted, "limit": m.limit, "valid": m.valid}))
    else:
        verdict = "fits" if m.valid else ("empty" if not text.strip() else "too long")
        print(f"{m.weighted}/{m.limit} ({verdict})")
    return EXIT_OK if m.valid else EXIT_INVALID


def _cmd_plan(args: argparse.Namespace) -> int:
    from bot.content.loader import load
    from bot.content.report import render_problems
    from bot.pipeline import plan
    from bot.schedule.render import plan_to_json, plan_to_text

    content = load(args.root)
    mission = _mission(content, args.mission)
    now = _now(args)
    if args.changed_since is not None or args.format == "markdown":
        return _plan_markdown(args, content, now, mission)
    # Planning from the real now pins slot posts; a preview (--from) creates and pins nothing.
    state = _store(args, create=not args.start)
    pins = state.pins if state is not None else None
    result = plan(content, now, args.days, pins, save=not args.start)
    if mission is not None:
        from bot.schedule.plan import for_mission

        result = for_mission(result, content, mission)
    if args.format == "json":
        print(json.dumps(plan_to_json(result, content, mission), ensure_ascii=False, indent=2))
    else:
        if content.warnings:
            print(render_problems(content.warnings), file=sys.stderr)
        print(plan_to_text(result, content, mission))
    return EXIT_OK


def _now(args: argparse.Namespace) -> datetime:
    """``--from`` (UTC when no offset is given), or now."""
    if not args.start:
        return datetime.now(UTC)
    from bot.content.timeparse import MAX_YEAR, MIN_YEAR

    try:
        now = datetime.fromisoformat(args.start.replace(" ", "T"))
    except ValueError:
        raise ConfigError(f"--from '{args.start}' is not YYYY-MM-DD HH:MM") from None
    if not MIN_YEAR <= now.year <= MAX_YEAR:  # beyond, date arithmetic overflows
        raise ConfigError(f"--from '{args.start}': give a year from {MIN_YEAR} to {MAX_YEAR}")
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now


def _since(args: argparse.Namespace) -> Since:
    from bot.content.loader import validate
    from bot.preview.changes import since

    return since(Path(args.root), args.changed_since, validate, _settings(args).git_env)


def _plan_markdown(
    args: argparse.Namespace, content: ContentSet, now: datetime, mission: str | None = None
) -> int:
    from bot.preview.site import plans
    from bot.schedule.render import plan_to_markdown

    if args.format != "markdown":
        raise ConfigError("--changed-since goes with --format markdown")
    state = _store(args, create=False)  # read the slot occurrences given; save nothing
    pinned = state.pins.load() if state is not None else {}
    since = _since(args) if args.changed_since else None
    result, diff = plans(content, now, args.days, pinned, since)
    if mission is not None:
        from bot.schedule.plan import for_mission

        result = for_mission(result, content, mission)
    print(plan_to_markdown(result, content, diff, since.ref if since else None, mission))
    if since is not None and since.base is None:
        print(
            f"_The content at `{since.ref}` does not validate "
            f"({len(since.base_problems)} problem(s)): every delivery counts as added._"
        )
    return EXIT_OK


def _cmd_preview(args: argparse.Namespace) -> int:
    from bot.content.loader import validate
    from bot.content.report import render_problems
    from bot.preview.render import file_url
    from bot.preview.render import render_problems as problems_site
    from bot.preview.site import Unavailable, make
    from bot.publish.media import FolderMedia
    from bot.source import head_commit
    from bot.translate.base import Translator

    out = Path(args.out) if args.out else Path(args.root) / ".diplobot" / "preview"
    content, problems = validate(args.root)
    if content is None:  # the site says so too: a pull request's artifact is opened first
        problems_site(problems).write(out, FolderMedia(Path(args.root)))
        print(render_problems(problems), file=sys.stderr)
        print(f"the content has errors: {file_url(out)}")
        return EXIT_INVALID
    now = _now(args)
    since = _since(args) if args.changed_since else None
    try:
        translator: Translator = _wiring(args).translator()
    except ConfigError as exc:  # the preview still shows the human texts
        print(f"WARNING: machine translations unavailable: {exc}", file=sys.stderr)
        translator = Unavailable(str(exc))
    state = _store(args)
    assert state is not None
    made = make(
        content,
        now,
        args.days,
        translator,
        state.translations,
        pins=state.pins,
        since=since,
        revision=head_commit(Path(args.root))[0],
        parallel=_settings(args).translator.parallel,
        mission=_mission(content, args.mission),
    )
    for missing in made.site.write(out, FolderMedia(Path(args.root))):
        print(f"WARNING: image not copied: {missing}", file=sys.stderr)
    cards = [c for p in made.preview.posts for c in p.cards]
    waiting = sum(1 for c in cards if not c.ready)
    over = sum(1 for c in cards if c.over)
    print(
        f"{len(made.preview.posts)} post(s), {len(cards)} card(s)"
        f" ({waiting} not ready, {over} over a limit): {file_url(out)}"
    )
    return EXIT_OK


def _cmd_translate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from bot.content.loader import load
    from bot.pipeline import localize
    from bot.translate.write import write_translations

    content = load(args.root)
    unknown = [i for i in args.ids if i not in content.posts]
    if unknown:
        raise ConfigError(
            "no post with id "
            + ", ".join(repr(i) for i in unknown)
            + "; 'diplobot plan' lists them"
        )
    if args.write and not args.ids:
        raise ConfigError(
            "--write needs the ids of the posts to write, e.g. "
            "'diplobot translate --write cop31-ouverture'"
        )
    translator = _wiring(args).translator()
    state = _store(args)
    assert state is not None
    parallel = _settings(args).translator.parallel
    result = localize(
        content, translator, state.translations, post_ids=args.ids or None, parallel=parallel
    )
    if args.write:
        for post_id in args.ids:
            langs = write_translations(
                Path(args.root), content.posts[post_id], result.variants, translator.name
            )
            where = content.posts[post_id].path
            print(f"{where}: wrote {', '.join(langs)}" if langs else f"{where}: nothing to write")
    elif args.format == "json":
        print(
            json.dumps(
                {
                    "backend": translator.name,
                    "engine_calls": result.stats.engine_calls,
                    "cache_hits": result.stats.cache_hits,
                    "variants": [
                        {k: x for k, x in asdict(v).items() if k != "glossary" or x}
                        for v in result.variants
                    ],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        for v in result.variants:
            part = (
                f" part {v.part}" if content.posts[v.post].parts_for(v.platform or None) > 1 else ""
            )
            reason = f" — {v.reason}" if v.reason else ""
            # The platform only where the language has several (each may differ).
            where = f" {v.platform}" if len(content.platforms_of(v.lang)) > 1 else ""
            print(f"{v.post} [{v.lang}{where}]{part}: {v.origin}, {v.state}{reason}")
            for text in v.texts:
                print("    " + text.replace("\n", "\n    "))
        print(
            f"{result.stats.engine_calls} engine call(s), {result.stats.cache_hits} from cache "
            f"({translator.name})"
        )
    bad = [v for v in result.variants if v.state in ("held", "failed")]
    return EXIT_INVALID if bad else EXIT_OK


def _publishing(
    args: argparse.Namespace, content: ContentSet, *, dry_run: bool = False
) -> Publishing:
    from bot.publish.session import Publishing
    from bot.state import state_dir, state_url

    store = _store(args)
    assert store is not None
    url = state_url(Path(args.root), args.state)
    folder = state_dir(url, Path(args.root), _settings(args).state_dir)
    pub = Publishing.build(content, store, folder, _wiring(args), dry_run=dry_run)
    for warning in pub.warnings:
        print(f"WARNING: {warning}", file=sys.stderr)
    return pub


def _targets(content: ContentSet, post_id: str, langs: list[str] | None) -> list[str]:
    entry = content.posts.get(post_id)
    if entry is None:
        raise ConfigError(f"no post with id '{post_id}'; 'diplobot plan' lists the posts")
    if langs:
        unknown = [lang for lang in langs if lang not in entry.languages]
        if unknown:
            raise ConfigError(
                f"{post_id} is not published in {', '.join(unknown)}; it goes "
                f"out in {', '.join(entry.languages)}"
            )
    # Every account the post goes to: its mission's, and those amplifying it (a copy, or a
    # repost of the central account's post, made once that post is published).
    accounts = content.accounts.accounts
    every = [t.account for t in content.targets_of(entry)]
    return [a for a in every if not langs or accounts[a].lang in langs]


def _cmd_post_now(args: argparse.Namespace) -> int:
    from bot.content.loader import load
    from bot.pipeline import publish_now
    from bot.state.ledger import State  # SQLAlchemy: only for the commands that need it

    content = load(args.root)
    accounts = _targets(content, args.id, args.lang)
    if args.account is not None:
        accounts = [_account(content, args.id, args.account, accounts)]
    elif args.resend:
        raise ConfigError("--resend needs --account: say which account to send again")
    pub = _publishing(args, content, dry_run=args.dry_run)
    if args.resend:
        channel = pub.channel_of[args.account]
        unknown = [
            r
            for r in pub.ledger.rows(args.id, channel=channel)
            if r.account == args.account and r.state is State.UNKNOWN
        ]
        if not unknown:
            print(f"@{content.accounts.accounts[args.account].handle}: nothing UNKNOWN to resend")
        for line in pub.deliverers[channel].resend(unknown, datetime.now(UTC)):
            print(f"@{content.accounts.accounts[args.account].handle} ({channel}): {line}")
    results = publish_now(pub, content, content.posts[args.id], accounts)
    handles = {a: x.handle for a, x in content.accounts.accounts.items()}
    for result in results:
        where = f"@{handles[result.account]} ({pub.channel_of[result.account]})"
        for line in result.rearmed:
            print(f"{where}: {line}")
        if result.message:
            print(f"{where}: {result.message}")
            continue
        for row in result.rows:
            detail = row.url or row.remote_id or row.last_error or ""
            if row.state is State.PENDING and row.retry_at is not None:
                detail = f"(retry after {row.retry_at:%Y-%m-%d %H:%M} UTC: {detail})"
            print(f"{where}: part {row.part} {row.state} {detail}".rstrip())
    return EXIT_OK if all(r.ok and not r.message for r in results) else EXIT_INVALID


def _account(content: ContentSet, post_id: str, account: str, targets: list[str]) -> str:
    """``--account``: an account of accounts.yaml that ``post_id`` goes out on."""
    if account not in content.accounts.accounts:
        known = ", ".join(sorted(content.accounts.accounts))
        raise ConfigError(f"no account '{account}' in accounts.yaml: use one of {known}")
    if account not in targets:
        raise ConfigError(f"{post_id} does not go out on account '{account}'")
    return account


def _cmd_mark_posted(args: argparse.Namespace) -> int:
    from bot.content.loader import load
    from bot.publish.manual import mark_posted

    content = load(args.root)
    account = _account(content, args.id, args.account, _targets(content, args.id, None))
    store = _store(args, create=False)
    if store is None:
        print(f"diplobot: no deliveries recorded for {args.id}", file=sys.stderr)
        return EXIT_INVALID
    ledger = store.ledger
    rows = [r for r in ledger.rows(args.id) if r.account == account]
    marked = mark_posted(
        ledger,
        rows,
        platform=content.accounts.accounts[account].platform,
        url=args.url,
        part=args.part,
    )
    handle = content.accounts.accounts[account].handle
    print(f"@{handle}: {marked.message}", file=sys.stdout if marked.ok else sys.stderr)
    return EXIT_OK if marked.ok else EXIT_INVALID


def _cmd_status(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from bot.publish.deliver import for_a_person
    from bot.state.ledger import State

    store = _store(args, create=False)
    ledger = store.ledger if store is not None else None
    rows = ledger.rows(args.id) if ledger is not None else []
    if args.mission is not None:
        from bot.content.loader import load

        content = load(args.root)
        mine = set(content.accounts_of(_mission(content, args.mission) or content.central))
        rows = [r for r in rows if r.account in mine]
    # A SENDING row whose owner is gone: the next start of the service or post-now
    # reconciles it; until then it needs a look.
    stale = ledger.stale_claims(datetime.now(UTC), rows) if ledger is not None else {}
    if args.format == "json":
        print(
            json.dumps(
                [
                    {
                        **asdict(r),
                        "state": str(r.state),
                        "media": [asdict(m) for m in r.media],
                        "stale": stale.get(r.id),
                        "for_a_person": for_a_person(r),
                    }
                    for r in rows
                ],
                default=str,
                ensure_ascii=False,
                indent=2,
            )
        )
        return EXIT_OK
    if not rows:
        print("no deliveries recorded" + (f" for {args.id}" if args.id else ""))
        return EXIT_OK
    for r in rows:
        tail = r.url or r.remote_id or ""
        if r.last_error and r.state is not State.POSTED:
            tail = r.last_error
        if r.id in stale:
            tail = f"STALE: {stale[r.id]}; reconciled at the next start of the service or post-now"
        if r.repost_of is not None:  # amplification: a repost of the central account's post
            tail = f"↻ repost of {r.repost_of}" + (f": {tail}" if tail else "")
        retry = f" retry at {r.retry_at:%Y-%m-%d %H:%M} UTC" if r.retry_at else ""
        state = str(r.state)
        if for_a_person(r):  # a manual task, or a channel that cannot be searched
            state, retry = f"{r.state} (FOR A PERSON)", ""
        print(
            f"{r.due_at:%Y-%m-%d %H:%M} UTC  {r.post_id} part {r.part}  {r.account} "
            f"[{r.channel}]  {state}  attempts {r.attempts}{retry}  {tail}".rstrip()
        )
    problems = [
        r for r in rows if r.state in (State.FAILED, State.UNKNOWN, State.EXPIRED) or r.id in stale
    ]
    if problems:
        print(
            f"{len(problems)} delivery(ies) need attention (FAILED, UNKNOWN, EXPIRED or stale "
            "SENDING): see docs/operations.md"
        )
    waiting = [r for r in rows if for_a_person(r)]
    if waiting:
        print(
            f"{len(waiting)} of them wait for a person (a Weibo task, or a Telegram post to "
            "check): each line says what to do, then 'diplobot mark-posted'"
        )
    return EXIT_OK


def _cmd_retract(args: argparse.Namespace) -> int:
    from bot.content.loader import load
    from bot.publish.deliver import display_name, may_be_live
    from bot.publish.retract import retract
    from bot.state.ledger import State

    content = load(args.root)
    accounts = _targets(content, args.id, args.lang)
    pub = _publishing(args, content)
    rows = [r for r in pub.ledger.rows(args.id) if r.account in accounts]
    live = [r for r in rows if r.state is State.POSTED]
    pending = [r for r in rows if r.state in (State.PENDING, State.HELD)]
    unsure = [r for r in rows if may_be_live(r)]
    if not live and not pending and not unsure:
        print(f"nothing to retract for {args.id}")
        return EXIT_OK
    if not args.yes:
        if not sys.stdin.isatty():
            print("retract deletes published posts: add --yes to confirm", file=sys.stderr)
            return EXIT_USAGE
        where = " or ".join(sorted({display_name(pub.platforms, r.account) for r in unsure}))
        unsure_part = (
            f", look up {len(unsure)} that {where} may hold (deleted if found)" if unsure else ""
        )
        answer = input(
            f"Delete {len(live)} published post(s){unsure_part} and cancel {len(pending)} "
            f"pending one(s) of {args.id}? [y/N] "
        )
        if answer.strip().lower() not in ("y", "yes", "o", "oui"):
            print("nothing changed")
            return EXIT_OK
    outcome = retract(pub, rows)
    for line in outcome.lines:
        print(line)
    return EXIT_OK if outcome.ok else EXIT_INVALID


def _cmd_accounts(args: argparse.Namespace) -> int:
    from bot.content.loader import load
    from bot.errors import PublishError
    from bot.platforms import own_publishers, platform_of, read_settings
    from bot.publish.base import AccountCheck

    content = load(args.root)
    accounts = content.accounts.accounts
    ok = True
    found = own_publishers(accounts, read_settings(accounts, _wiring(args).settings))
    for account, publisher in found.items():
        handle = accounts[account].handle
        where = f"{account} ({platform_of(accounts[account]).display})"
        if isinstance(publisher, str):
            print(f"{where}: no credentials (set {publisher})")
            ok = False
            continue
        try:
            actual = publisher.whoami(account)
            # A platform's own checks (a token's expiry, an instance's limit), when it has any.
            warnings = publisher.check(account) if isinstance(publisher, AccountCheck) else []
        except PublishError as exc:
            print(f"{where}: FAILED: {exc}")
            ok = False
            continue
        if actual.lower() != handle.lower():
            print(
                f"{where}: credentials belong to @{actual}, but accounts.yaml says "
                f"@{handle}: fix one of them"
            )
            ok = False
        else:
            print(f"{where}: ok (@{actual})")
        for warning in warnings:
            print(f"{where}: WARNING: {warning}")
    return EXIT_OK if ok else EXIT_INVALID


STOP_BUDGET = 7.5
"""Seconds from SIGTERM for work in flight to finish; the process ends by STOP_BUDGET + 1 s
whatever happens, within Docker's 10 s before SIGKILL."""


def _cmd_run(args: argparse.Namespace) -> int:
    import signal
    import threading
    import time

    from bot.http import serve
    from bot.service import Service
    from bot.source import GitSource, LocalSource, Source
    from bot.state import state_dir, state_url
    from bot.wiring import Wiring

    config = _settings(args)
    settings = config.service
    url = state_url(Path(args.root), args.state)
    folder = state_dir(url, Path(args.root), config.state_dir)
    source: Source
    if config.repo_url:
        source = GitSource(
            config.repo_url.reveal(), config.repo_branch, folder / "repo", config.git_env
        )
    else:
        source = LocalSource(Path(args.root), config.git_env)
    wiring = Wiring(config)
    service = Service(
        source, wiring.store(url), folder, settings, wiring=wiring, dry_run=args.dry_run
    )
    stop = threading.Event()
    failed: list[BaseException] = []

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    def start() -> None:
        # Off the main thread, so that a signal during the first sync (a slow clone, a
        # translation) is acted on at once rather than when that sync ends.
        try:
            service.start()
        except BaseException as exc:
            failed.append(exc)
            stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server, _thread = serve(service, settings.http_addr)
    threading.Thread(target=start, name="start", daemon=True).start()
    while not stop.wait(0.5):  # a timed wait: the handler's set() is seen even if missed
        pass
    deadline = time.monotonic() + STOP_BUDGET
    # Whatever blocks below (a database lock, a client), the process is gone before Docker's
    # SIGKILL: what it was doing is safe to abandon, as after a crash.
    watchdog = threading.Timer(STOP_BUDGET + 1.0, _exit_now, args=("stop.overdue",))
    watchdog.daemon = True
    watchdog.start()
    server.shutdown()  # no new request, no new webhook
    server.server_close()
    clean = service.stop(timeout=max(0.0, deadline - time.monotonic()))
    if failed:
        raise failed[0]
    if not clean:
        # A thread still waits on X or a translator (their own timeouts are longer): the
        # interpreter would wait for it at exit. The ledger is made for this (a claimed
        # delivery is reconciled at the next start), so end the process now.
        _exit_now()
    return EXIT_OK


def _exit_now(event: str | None = None) -> None:
    import faulthandler

    from loguru import logger

    if event:  # something blocked the stop: show where every thread was, for a bug report
        logger.error(event)
        faulthandler.dump_traceback(all_threads=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_OK)


def _cmd_health(args: argparse.Namespace) -> int:
    import urllib.error
    import urllib.request

    from bot.http import parse_addr

    host, port = parse_addr(_settings(args).service.http_addr)
    host = "127.0.0.1" if host in ("0.0.0.0", "") else host
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=5) as response:
            ok = response.status == 200
    except (urllib.error.URLError, OSError) as exc:
        print(f"diplobot health: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print("ok" if ok else "unhealthy")
    return EXIT_OK if ok else EXIT_INVALID


def _cmd_pause(args: argparse.Namespace, paused: bool = True) -> int:
    from bot.content.loader import load

    content = load(args.root)
    if args.account and args.account not in content.accounts.accounts:
        raise ConfigError(
            f"unknown account '{args.account}'; accounts: " + ", ".join(content.accounts.accounts)
        )
    store = _store(args)
    assert store is not None
    store.pauses.set(args.account, getattr(args, "reason", "") or "", paused)
    who = args.account or "every account"
    print(f"{'paused' if paused else 'resumed'}: {who}")
    return EXIT_OK


def _cmd_schema(args: argparse.Namespace) -> int:
    from bot.content.schema import schema_json, write_schemas

    if args.directory is None:
        print(schema_json("post"))
        return EXIT_OK
    for path in write_schemas(Path(args.directory)):
        print(path)
    return EXIT_OK


_COMMANDS = {
    "validate": _cmd_validate,
    "count": _cmd_count,
    "plan": _cmd_plan,
    "preview": _cmd_preview,
    "translate": _cmd_translate,
    "post-now": _cmd_post_now,
    "mark-posted": _cmd_mark_posted,
    "status": _cmd_status,
    "retract": _cmd_retract,
    "accounts": _cmd_accounts,
    "run": _cmd_run,
    "health": _cmd_health,
    "pause": _cmd_pause,
    "resume": lambda args: _cmd_pause(args, paused=False),
    "schema": _cmd_schema,
}
