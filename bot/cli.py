"""The ``diplobot`` command: parses arguments, calls the core, maps errors to exit codes.

Exit codes: 0 success, 1 the content (or the text) is invalid, 2 usage or configuration error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot import __version__
from bot.errors import BotError, ConfigError, ContentError

if TYPE_CHECKING:
    from sqlalchemy import Engine

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


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

    p = sub.add_parser("count", parents=[common], help="X weighted length of a text")
    p.add_argument("text", help="the text ('-' reads standard input)")
    p.add_argument("--format", choices=("text", "json"), default="text")

    p = sub.add_parser(
        "plan", parents=[common], help="upcoming deliveries per account, in local time"
    )
    p.add_argument("--days", type=_positive_int, default=7)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--from",
        dest="start",
        metavar="DATETIME",
        help="plan as if it were this UTC time (YYYY-MM-DD HH:MM); nothing is saved",
    )

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

    p = sub.add_parser("schema", parents=[common], help="write the JSON Schemas editors' tools use")
    p.add_argument("directory", nargs="?", help="where to write (default: print post schema)")
    return parser


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
    # Not parser defaults: the --root/--state actions are shared with every subcommand, and a
    # default there would overwrite a value given before the command.
    if not hasattr(args, "root"):
        args.root = os.environ.get("DIPLOBOT_ROOT", ".")
    if not hasattr(args, "state"):
        args.state = os.environ.get("DIPLOBOT_STATE")
    if not Path(args.root).is_dir():
        print(f"diplobot: --root {args.root}: no such directory", file=sys.stderr)
        return EXIT_USAGE
    from bot.log import setup_logging

    setup_logging()
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


def _store(args: argparse.Namespace, *, create: bool = True) -> Engine | None:
    """The state database; with ``create=False``, None when it does not exist yet."""
    from bot.store import open_store, state_exists, state_url

    url = state_url(Path(args.root), args.state)
    if not create and not state_exists(url):
        return None
    return open_store(url)


def _cmd_validate(args: argparse.Namespace) -> int:
    from bot.content.loader import validate
    from bot.content.report import render_problems

    content, problems = validate(args.root)
    rendered = render_problems(problems, args.format)
    if rendered:
        print(rendered)
    return EXIT_OK if content is not None else EXIT_INVALID


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
    from bot.schedule.pins import PinStore
    from bot.schedule.plan import plan
    from bot.schedule.render import plan_to_json, plan_to_text

    content = load(args.root)
    if args.start:
        try:
            now = datetime.fromisoformat(args.start.replace(" ", "T"))
        except ValueError:
            raise ConfigError(f"--from '{args.start}' is not YYYY-MM-DD HH:MM") from None
        now = now.replace(tzinfo=UTC) if now.tzinfo is None else now
    else:
        now = datetime.now(UTC)
    # Planning from the real now pins slot posts; a preview (--from) creates and pins nothing.
    engine = _store(args, create=not args.start)
    store = PinStore(engine) if engine is not None else None
    pinned = store.load() if store is not None else {}
    result = plan(content, now, args.days, pinned=pinned)
    if store is not None and not args.start and (result.new_pins or set(pinned) - set(result.pins)):
        store.save(result.pins, keep=set(result.pins))
    if args.format == "json":
        print(json.dumps(plan_to_json(result, content), ensure_ascii=False, indent=2))
    else:
        if content.warnings:
            print(render_problems(content.warnings), file=sys.stderr)
        print(plan_to_text(result, content))
    return EXIT_OK


def _cmd_translate(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from bot.config import TranslatorSettings
    from bot.content.loader import load
    from bot.translate.cache import TranslationCache
    from bot.translate.localize import localize
    from bot.translate.registry import make_translator
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
    settings = TranslatorSettings.from_env()
    translator = make_translator(settings)
    cache = TranslationCache(_store(args))  # type: ignore[arg-type]
    result = localize(
        content, translator, cache, post_ids=args.ids or None, parallel=settings.parallel
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
                    "variants": [asdict(v) for v in result.variants],
                },
                ensure_ascii=False,
                indent=2,
            )
        )
    else:
        for v in result.variants:
            part = f" part {v.part}" if content.posts[v.post].parts > 1 else ""
            reason = f" — {v.reason}" if v.reason else ""
            print(f"{v.post} [{v.lang}]{part}: {v.origin}, {v.state}{reason}")
            for text in v.texts:
                print("    " + text.replace("\n", "\n    "))
        print(
            f"{result.stats.engine_calls} engine call(s), {result.stats.cache_hits} from cache "
            f"({translator.name})"
        )
    bad = [v for v in result.variants if v.state in ("held", "failed")]
    return EXIT_INVALID if bad else EXIT_OK


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
    "translate": _cmd_translate,
    "schema": _cmd_schema,
}
