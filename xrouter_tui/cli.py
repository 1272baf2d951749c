"""The command line: parse arguments, build settings, run a one-shot command.

Exit codes (a contract scripts rely on): 0 done; 1 request or stream failed; 2 usage or
configuration error; 3 payment refused by the spending policy (nothing signed); 130 interrupted.
Errors are one or two plain lines on stderr, never a traceback (set XROUTER_DEBUG=1 for one).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from typing import IO

from eth_account.signers.local import LocalAccount

from xrouter_tui import __version__, devserver
from xrouter_tui.api import (
    Limits,
    ModelInfo,
    NoWallet,
    RouterClient,
    RouterError,
    Timeouts,
    payment_note,
)
from xrouter_tui.commands.ask import (
    AskRequest,
    Progress,
    PromptError,
    TurnRecord,
    build_messages,
    read_prompt,
    stream_answer,
)
from xrouter_tui.commands.demo import DEMO_NETWORK, demo_router
from xrouter_tui.commands.history import (
    export_json,
    export_markdown,
    history_json,
    history_table,
)
from xrouter_tui.commands.journal import TurnJournal, history_path
from xrouter_tui.commands.key import KeyIO, run_key_command
from xrouter_tui.commands.models import models_json, models_table
from xrouter_tui.commands.proxy import DEFAULT_PORT as PROXY_PORT
from xrouter_tui.commands.proxy import TOKEN_VARIABLE as PROXY_TOKEN_VARIABLE
from xrouter_tui.commands.proxy import ProxyOptions, ProxyRefused, ProxyRouter
from xrouter_tui.commands.proxy import serve as serve_proxy
from xrouter_tui.commands.spend import not_counted_note, spend_csv, spend_json, spend_table
from xrouter_tui.commands.terminal import ask_yes_no, is_terminal
from xrouter_tui.config import ConfigError, Settings, apply_settings, data_dir, load_settings
from xrouter_tui.ledger import Ledger
from xrouter_tui.model_catalog import FALLBACK_MODELS, ModelCatalog
from xrouter_tui.payments import (
    Network,
    PaymentRefused,
    Quote,
    SpendingPolicy,
    format_usd,
    short_address,
    unconfirmed,
)
from xrouter_tui.pricing import shorter_max_tokens
from xrouter_tui.safe_text import one_line
from xrouter_tui.store import Store, StoreError
from xrouter_tui.wallet import ENV_KEY, WalletError, load_account, redact

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_REFUSED", "EXIT_USAGE", "build_parser", "main"]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_INTERRUPTED = 130

PROG = "xrouter-tui"


def build_parser() -> argparse.ArgumentParser:
    """The whole command line; `design.md` holds its contract."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="A terminal chat for X-Router that pays for each request with x402 (USDC).",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_router_options(parser)
    _add_model_options(parser)
    # The options exist before and after the command word; only a given one may set them, or
    # the command's silent default would undo `xrouter-tui --demo ask …`.
    parser.set_defaults(demo=False, base_url=None, model=None, max_tokens=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ask = commands.add_parser(
        "ask",
        help="ask one question; the answer streams to stdout",
        description="Ask one question and stream the answer to stdout. The prompt comes from "
        "the arguments, or stdin when none is given or it is '-'; piped stdin is appended to a "
        "given prompt.",
    )
    ask.add_argument("prompt", nargs="*", help="the question (default: read stdin)")
    _add_model_options(ask)
    ask.add_argument("-s", "--system", help="a system prompt for this question")
    ask.add_argument(
        "--raw",
        action="store_true",
        help="write the answer exactly as the router sent it, escape sequences and control "
        "characters included (by default they are removed: they could set the window title, "
        "the clipboard or clear the screen)",
    )
    ask.add_argument(
        "--max-price",
        type=_usd_argument,
        metavar="USD",
        help="refuse to pay more than this for this request (tightens max_per_request_usd)",
    )
    saved = ask.add_mutually_exclusive_group()
    saved.add_argument(
        "-c",
        "--continue",
        dest="continue_latest",
        action="store_true",
        help="continue the most recent conversation: its earlier exchanges are sent too, and "
        "its model and system prompt are kept unless -m or -s is given",
    )
    saved.add_argument(
        "--cid", type=_id_argument, metavar="ID", help="continue the conversation with this id"
    )
    saved.add_argument(
        "--no-history",
        action="store_true",
        help="save nothing of this question or its answer (its payment is still kept in the "
        "ledger, so that budgets hold)",
    )
    ask.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="pay above confirm_above_usd without asking (needed when there is no terminal to "
        "ask on); caps and budgets still hold",
    )
    _add_router_options(ask)

    history = commands.add_parser(
        "history",
        help="list the saved conversations, newest first",
        description="List the saved conversations, the most recently changed first.",
    )
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    history.add_argument(
        "--search",
        metavar="TEXT",
        help="only conversations whose title or a message contains every word of TEXT",
    )

    export = commands.add_parser(
        "export",
        help="print one saved conversation as Markdown or JSON",
        description="Print one saved conversation to stdout: Markdown with a front-matter "
        "(model, tokens, cost, transactions), or JSON.",
    )
    export.add_argument("id", type=_id_argument, metavar="ID", help="the id `history` shows")
    export.add_argument("--format", choices=("md", "json"), default="md", help="default: md")

    spend = commands.add_parser(
        "spend",
        help="show what was paid: totals, per model, and every payment",
        description="Show what was paid on the allowed networks (allowed_networks): today, in "
        "all, per model, and every payment newest first with its status and transaction. "
        "Payments stay here when their conversation is deleted.",
    )
    spend.add_argument(
        "--demo",
        action="store_true",
        default=argparse.SUPPRESS,
        help="the demo's payments instead (on its test network: no real money)",
    )
    spend_format = spend.add_mutually_exclusive_group()
    spend_format.add_argument("--json", action="store_true", help="print JSON instead of tables")
    spend_format.add_argument(
        "--csv", action="store_true", help="print the payments as CSV (one row each)"
    )

    models = commands.add_parser("models", help="list the router's models and prices")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_router_options(models)

    key = commands.add_parser(
        "key",
        help="keep the wallet key in the OS keyring: import, generate, show, export, delete",
        description="The wallet key lives in the OS keyring (service 'xrouter-tui'). import "
        "reads it from a hidden prompt, or from stdin when stdin is not a terminal (never "
        "from the command line); generate makes a new one; show prints the address; export "
        "prints the key, on a terminal only, after you confirm; delete forgets it. "
        f"{ENV_KEY}, when set, overrides the keyring (less safe: for headless machines).",
    )
    key.add_argument("action", choices=("import", "generate", "show", "export", "delete"))
    # Caught to refuse it without echoing it: a key typed here would sit in the shell's history.
    key.add_argument("given", nargs="*", help=argparse.SUPPRESS)
    key.add_argument(
        "-y", "--yes", action="store_true", help="replace or delete a stored key without asking"
    )

    proxy = commands.add_parser(
        "proxy",
        help="serve an OpenAI-compatible API on this machine that pays X-Router per request",
        description="Serve POST /v1/chat/completions and GET /v1/models on this machine for "
        "any OpenAI-compatible tool, paying X-Router for each request with the wallet key in "
        "the keyring, under your caps and budgets (no one is asked: a payment above "
        "confirm_above_usd is refused unless --yes). Clients send a token as their API key. "
        "Every request lands in the history and the ledger.",
    )
    proxy.add_argument(
        "--host",
        default="127.0.0.1",
        help="where to listen (default 127.0.0.1; anything but loopback needs --allow-remote)",
    )
    proxy.add_argument(
        "--port",
        type=_port_argument,
        default=PROXY_PORT,
        help=f"the port (default {PROXY_PORT}; 0 picks a free one)",
    )
    proxy.add_argument(
        "--token",
        help=f"the API key clients must send (default: {PROXY_TOKEN_VARIABLE}, else a new one, "
        "printed at start)",
    )
    proxy.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a --host other machines can reach (they can spend with the token)",
    )
    proxy.add_argument(
        "-y",
        "--yes",
        action="store_true",
        help="pay above confirm_above_usd without asking, up to max_per_request_usd",
    )
    _add_model_options(proxy)
    _add_router_options(proxy)

    server = commands.add_parser(
        "demo-server",
        help="run the local X-Router (for demos and tests) on 127.0.0.1",
        description="Run the local X-Router: real x402 payments verified locally, a made-up "
        "Markdown reply, and switchable faults.",
    )
    devserver.add_arguments(server)
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    env: Mapping[str, str] | None = None,
    stdin: IO[str] | None = None,
    stdout: IO[str] | None = None,
    stderr: IO[str] | None = None,
) -> int:
    """Run the command line and return its exit code."""
    env = os.environ if env is None else env
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    args = build_parser().parse_args(argv)  # usage errors exit 2 from argparse itself
    try:
        code = _command(args, env, stdin, stdout, stderr)
        # Flushed here, inside the try, for every command: a reader that went away is then met
        # below, not at exit, where Python would print a traceback.
        stdout.flush()
        return code
    except BrokenPipeError as exc:
        # The reader of stdout went away (`history --json | head`): a listing gave it what it
        # wanted; an answer's turn is over, stopped (exit 1). Nothing is said either way.
        if not (_lists(args) or args.command == "ask"):
            return _unexpected(exc, env, stderr)
        _silence_stdout(stdout)
        return EXIT_OK if _lists(args) else EXIT_FAILED
    except (ConfigError, WalletError, PromptError) as exc:
        _error(stderr, str(exc))
        return EXIT_USAGE
    except StoreError as exc:
        _error(stderr, str(exc))
        return EXIT_FAILED
    except KeyboardInterrupt:
        _error(stderr, "interrupted.")
        return EXIT_INTERRUPTED
    except Exception as exc:  # the last line of defence: one plain line, never a traceback
        return _unexpected(exc, env, stderr)


def _lists(args: argparse.Namespace) -> bool:
    """True for the commands that only print what is kept or listed: a closed stdout ends them
    quietly and well."""
    if args.command == "key":
        return args.action == "show"
    return args.command in ("history", "export", "models", "spend")


def _unexpected(exc: Exception, env: Mapping[str, str], stderr: IO[str]) -> int:
    if env.get("XROUTER_DEBUG"):
        traceback.print_exception(exc, file=stderr)
    message = f"unexpected error: {type(exc).__name__}: {exc}"
    key = env.get(ENV_KEY)
    _error(stderr, redact(message, key) if key else message)
    return EXIT_FAILED


def _command(
    args: argparse.Namespace,
    env: Mapping[str, str],
    stdin: IO[str],
    stdout: IO[str],
    stderr: IO[str],
) -> int:
    """Run the command `args` names and return its exit code; `main` turns errors into lines."""
    if args.command == "ask":
        return _ask(args, env, stdin, stdout, stderr)
    if args.command == "models":
        return _models(args, env, stdout, stderr)
    if args.command == "history":
        return _history(args, env, stdout)
    if args.command == "export":
        return _export(args, env, stdout, stderr)
    if args.command == "spend":
        return _spend(args, env, stdout)
    if args.command == "proxy":
        return _proxy(args, env, stdout, stderr)
    if args.command == "key":
        if args.given:
            _error(
                stderr,
                "key commands take no arguments: the key is read from a hidden prompt, or "
                "from stdin, never from the command line (it would stay in your shell's "
                "history and show in the list of processes).",
            )
            return EXIT_USAGE
        run_key_command(args.action, KeyIO(stdin, stdout, stderr, env), assume_yes=args.yes)
        return EXIT_OK
    if args.command == "demo-server":
        try:
            devserver.serve(devserver.config_from_args(args), args.host, args.port)
        except OSError as exc:
            _error(stderr, f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}.")
            return EXIT_USAGE
        return EXIT_OK
    return _chat(args, env, stderr)


def _ask(
    args: argparse.Namespace,
    env: Mapping[str, str],
    stdin: IO[str] | None,
    stdout: IO[str],
    stderr: IO[str],
) -> int:
    settings = _settings(args, env)
    prompt = read_prompt(args.prompt, stdin)
    # The ledger lives in the history, so budgets hold even for --no-history.
    with Store.open(history_path(env)) as store:
        return _ask_and_answer(args, env, settings, prompt, store, stdin, stdout, stderr)


def _ask_and_answer(
    args: argparse.Namespace,
    env: Mapping[str, str],
    settings: Settings,
    prompt: str,
    store: Store,
    stdin: IO[str] | None,
    stdout: IO[str],
    stderr: IO[str],
) -> int:
    """One question, answered, paid into the ledger and, unless --no-history, saved as it
    goes."""
    system = settings.system_prompt if args.system is None else args.system
    model = args.model or settings.model
    earlier: tuple[dict[str, str], ...] = ()
    conversation_id: int | None = None
    if args.continue_latest or args.cid is not None:
        conversation_id = store.latest_conversation_id() if args.continue_latest else args.cid
        info = store.conversation(conversation_id) if conversation_id is not None else None
        if info is None:
            _error(
                stderr,
                "no conversation to continue yet."
                if args.continue_latest
                else f"no conversation with id {args.cid} (`{PROG} history` lists them).",
            )
            return EXIT_USAGE
        # Going on with a conversation keeps its model and system prompt unless told otherwise.
        model = args.model or info.model or model
        if args.system is None:
            system = info.system_prompt
        elif args.system != info.system_prompt:
            store.set_system_prompt(info.id, args.system)
        earlier = tuple(m for m in store.history_messages(info.id) if m["role"] != "system")
    request = AskRequest(
        prompt=prompt,
        model=model,
        max_tokens=args.max_tokens or settings.max_tokens,
        system=system,
        temperature=settings.temperature,
        earlier=earlier,
    )
    with _router(args, settings, env, stderr) as (base_url, account, networks, models):
        if account is None:
            _error(stderr, _no_wallet("ask"))
            return EXIT_USAGE
        cap, cap_setting = settings.max_per_request_usd, "max_per_request_usd"
        if args.max_price is not None and args.max_price < cap:
            cap, cap_setting = args.max_price, "--max-price"
        policy = SpendingPolicy(networks=networks, max_per_request_usd=cap, cap_setting=cap_setting)
        ledger = Ledger(
            store,
            networks,
            session_budget_usd=settings.session_budget_usd,
            daily_budget_usd=settings.daily_budget_usd,
        )
        model_info = next((m for m in models if m.id == request.model), None)
        record = TurnRecord(model=request.model, model_info=model_info)
        progress = Progress(stderr, enabled=is_terminal(stderr))
        journal = None
        if not args.no_history:
            journal = TurnJournal(
                store, conversation_id=conversation_id, model=model, system_prompt=system
            )
            conversation_id = journal.begin(prompt)  # committed before any network I/O

        async def confirm(quote: Quote) -> bool:
            if args.yes or quote.amount_usd <= settings.confirm_above_usd:
                return True
            progress.clear()
            question = (
                f"Pay {format_usd(quote.amount_usd)} on {quote.network.label} to "
                f"{short_address(quote.requirement.pay_to)} for {request.model}? "
                f"(above confirm_above_usd, {format_usd(settings.confirm_above_usd)}) [y/N] "
            )
            answer = ask_yes_no(question, stdin or sys.stdin, stderr)
            if answer is None:
                raise unconfirmed(
                    quote.amount_usd,
                    settings.confirm_above_usd,
                    "there is no terminal to ask on",
                    "add --yes to pay it",
                )
            return answer

        async def turn() -> None:
            async with RouterClient(
                base_url,
                account=account,
                policy=policy,
                timeouts=Timeouts.of(settings),
                limits=Limits.of(settings),
            ) as client:
                await stream_answer(
                    client,
                    request,
                    record,
                    out=stdout,
                    progress=progress,
                    out_is_terminal=is_terminal(stdout),
                    ledger=ledger,
                    journal=journal,
                    confirm=confirm,
                    raw=args.raw,
                )

        try:
            asyncio.run(turn())
        except BrokenPipeError:
            # The reader of our stdout went away (`| head`): stop quietly, the turn is over.
            _silence_stdout()
            ledger.failed(record.payment, BrokenPipeError(), accepted=record.accepted)
            if journal is not None:
                journal.finish("stopped", usage=record.usage, error="the output was closed")
            return EXIT_FAILED
        except (KeyboardInterrupt, PaymentRefused, RouterError, StoreError) as exc:
            _end_answer(stdout, record, progress)
            if isinstance(exc, StoreError):
                message, code = str(exc), EXIT_FAILED
            else:
                message, code = _turn_failure(exc, record)
            if isinstance(exc, PaymentRefused):
                message = ledger.explain(exc) + _shorter_hint(exc, request, model_info)
            ledger.failed(record.payment, exc, accepted=record.accepted)
            if journal is not None:
                _save_failure(journal, exc, record, message)
            _error(stderr, message)
            return code
        except BaseException as exc:
            # Whatever else went wrong, the answer is not left `streaming`.
            ledger.failed(record.payment, exc, accepted=record.accepted)
            if journal is not None:
                _save_failure(journal, exc, record, f"{type(exc).__name__}: {exc}")
            raise
        _end_answer(stdout, record, progress)
        if journal is not None:
            journal.finish("complete", usage=record.usage)
        summary = record.summary()
        if conversation_id is not None:
            summary += f" · conversation {conversation_id}"
        print(summary, file=stderr, flush=True)
        return EXIT_OK


def _save_failure(
    journal: TurnJournal, exc: BaseException, record: TurnRecord, message: str
) -> None:
    """Keep how a turn ended: stopped by the user, or failed with its error and partial text."""
    try:
        if isinstance(exc, KeyboardInterrupt):
            journal.finish("stopped", usage=record.usage)
        else:
            partial = exc.partial_text if isinstance(exc, RouterError) else ""
            journal.finish("failed", usage=record.usage, error=message, partial_text=partial)
    except StoreError:
        pass  # the answer stays `streaming`, and is marked interrupted at the next start


def _shorter_hint(refusal: PaymentRefused, request: AskRequest, model: ModelInfo | None) -> str:
    """When a shorter answer would fit the limits, the --max-tokens that would do it."""
    fitting = shorter_max_tokens(refusal, model, build_messages(request), request.max_tokens)
    if fitting is None:
        return ""
    return f" A shorter answer would fit: --max-tokens {fitting} (now {request.max_tokens})."


def _chat(args: argparse.Namespace, env: Mapping[str, str], stderr: IO[str]) -> int:
    """The full-screen chat, against the demo router or the user's."""
    settings = _settings(args, env)
    if not is_terminal(sys.stdout):
        _error(stderr, f"the chat needs a terminal; for pipes and scripts use: {PROG} ask")
        return EXIT_USAGE
    # Imported here: one-shot commands should not pay for loading Textual.
    from xrouter_tui.ui import ChatApp, RouterSetup

    # The demo router logs through the root logger; on the chat's screen that would draw over
    # the app, so while it runs log records go nowhere unless XROUTER_DEBUG asks for them.
    if not env.get("XROUTER_DEBUG"):
        logging.getLogger().addHandler(logging.NullHandler())
    with _router(args, settings, env, None, need_key=False) as (base_url, account, networks, _):
        if not args.demo:
            # The environment only: a keyring may block or ask to be unlocked, so the app reads
            # it in a thread once it is on screen (and offers a setup when it holds no key).
            account = load_account(env, use_keyring=False)
        router = RouterSetup(base_url, account, networks, demo=args.demo)
        app = ChatApp(settings, router, env=env, model=args.model, max_tokens=args.max_tokens)
        app.run()
    return EXIT_OK


def _turn_failure(
    exc: KeyboardInterrupt | PaymentRefused | RouterError, record: TurnRecord
) -> tuple[str, int]:
    """What to tell the user when a turn ends early, and the exit code that goes with it."""
    if isinstance(exc, KeyboardInterrupt):
        note = payment_note(record.payment, accepted=record.accepted)
        return f"interrupted.{note}", EXIT_INTERRUPTED
    if isinstance(exc, PaymentRefused):
        return exc.message, EXIT_REFUSED
    return exc.message, EXIT_USAGE if isinstance(exc, NoWallet) else EXIT_FAILED


def _models(
    args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str], stderr: IO[str]
) -> int:
    settings = _settings(args, env)

    async def fetch(base_url: str) -> list:
        async with RouterClient(
            base_url, timeouts=Timeouts.of(settings), limits=Limits.of(settings)
        ) as client:
            return await client.list_models()

    with _router(args, settings, env, stderr, need_key=False) as (base_url, _account, _nets, _):
        try:
            models = asyncio.run(fetch(base_url))
        except RouterError as exc:
            _error(stderr, exc.message)
            return EXIT_FAILED
    print(models_json(models) if args.json else models_table(models), file=stdout, flush=True)
    return EXIT_OK


def _proxy(
    args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str], stderr: IO[str]
) -> int:
    """Serve the paying OpenAI-compatible endpoint until Ctrl+C."""
    settings = _settings(args, env)
    settings = replace(
        settings,
        model=args.model or settings.model,
        max_tokens=args.max_tokens or settings.max_tokens,
    )
    options = ProxyOptions(
        host=args.host,
        port=args.port,
        token=args.token,
        allow_remote=args.allow_remote,
        pay_without_asking=args.yes,
    )
    with (
        Store.open(history_path(env)) as store,
        _router(args, settings, env, stderr) as (base_url, account, networks, models),
    ):
        if account is None:
            _error(stderr, _no_wallet("proxy"))
            return EXIT_USAGE
        router = ProxyRouter(base_url, account, networks, models, Timeouts.of(settings))
        try:
            serve_proxy(options, router, settings, store, env, out=stdout, log=stderr)
        except ProxyRefused as exc:
            _error(stderr, str(exc))
            return EXIT_USAGE
        except OSError as exc:
            _error(stderr, f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}.")
            return EXIT_USAGE
    return EXIT_OK


def _no_wallet(command: str) -> str:
    return (
        f"no wallet key. Store yours in the keyring with `{PROG} key import`, or make a "
        f"new one with `{PROG} key generate` (or set {ENV_KEY}); to try it offline: "
        f"{PROG} {command} --demo"
    )


def _history(args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str]) -> int:
    with Store.open(history_path(env)) as store:
        conversations = store.conversations(search=args.search)
    print(history_json(conversations) if args.json else history_table(conversations), file=stdout)
    return EXIT_OK


def _export(
    args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str], stderr: IO[str]
) -> int:
    with Store.open(history_path(env)) as store:
        info = store.conversation(args.id)
        messages = store.messages(args.id) if info is not None else []
    if info is None:
        _error(stderr, f"no conversation with id {args.id} (`{PROG} history` lists them).")
        return EXIT_USAGE
    document = (
        export_json(info, messages) if args.format == "json" else export_markdown(info, messages)
    )
    stdout.write(document if document.endswith("\n") else document + "\n")
    stdout.flush()
    return EXIT_OK


def _spend(args: argparse.Namespace, env: Mapping[str, str], stdout: IO[str]) -> int:
    """The ledger of payments on the allowed networks, or the demo's: no session, so no
    session total."""
    settings = load_settings(env)
    networks = (DEMO_NETWORK,) if args.demo else settings.networks
    with Store.open(history_path(env)) as store:
        ledger = Ledger(store, networks)
        spending = ledger.spending(session=False)
        # For people only: what the table leaves out (scripts asked for the allowed networks).
        plain_table = not (args.demo or args.json or args.csv)
        elsewhere = (
            [p for p in store.payments() if p.network not in ledger.networks] if plain_table else []
        )
    if args.csv:
        stdout.write(spend_csv(spending))
    elif args.json:
        print(spend_json(spending), file=stdout)
    else:
        table = (
            spend_table(
                spending,
                heading=f"Demo, on {DEMO_NETWORK.label}",
                empty="No demo payments yet.",
            )
            if args.demo
            else spend_table(spending, note=not_counted_note(elsewhere, DEMO_NETWORK))
        )
        print(table, file=stdout)
    stdout.flush()
    return EXIT_OK


@contextmanager
def _router(
    args: argparse.Namespace,
    settings: Settings,
    env: Mapping[str, str],
    stderr: IO[str] | None,
    *,
    need_key: bool = True,
) -> Iterator[tuple[str, LocalAccount | None, tuple[Network, ...], Sequence[ModelInfo]]]:
    """Where to send requests, with which wallet, on which networks, and the models' prices as
    last known (no request is made for them): the demo's or the user's."""
    if args.demo:
        with demo_router(stderr=stderr) as demo:
            yield demo.base_url, demo.account, (demo.network,), demo.models
        return
    account = load_account(env) if need_key else None
    models = ModelCatalog(data_dir(env)).cached(settings.base_url) or FALLBACK_MODELS
    yield settings.base_url, account, settings.networks, models


def _settings(args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
    settings = load_settings(env)
    if getattr(args, "base_url", None):
        settings = apply_settings(settings, {"base_url": args.base_url}, source="--base-url")
    return settings


def _add_router_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo",
        action="store_true",
        default=argparse.SUPPRESS,
        help="use a local router on a free port with a throwaway wallet (no real money)",
    )
    parser.add_argument(
        "--base-url",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="the router's URL (XROUTER_BASE_URL)",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-m", "--model", default=argparse.SUPPRESS, help="the model id, e.g. openai/gpt-4o-mini"
    )
    parser.add_argument(
        "--max-tokens",
        type=_max_tokens_argument,
        metavar="N",
        default=argparse.SUPPRESS,
        help="the answer's length limit; the router charges up front for it (default 1024)",
    )


def _whole_number(low: int, high: int, what: str) -> Callable[[str], int]:
    """An argparse type: a whole number from `low` to `high`; `what` names it when it is not
    one ("a port number")."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {what}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {value}")
        return value

    return parse


_max_tokens_argument = _whole_number(1, 128_000, "a whole number")
_port_argument = _whole_number(0, 65_535, "a port number")


def _id_argument(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a conversation id: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a conversation id: {text!r}")
    return value


def _usd_argument(text: str) -> Decimal:
    try:
        value = Decimal(text.strip().lstrip("$"))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount in dollars: {text!r}") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError(f"must be an amount above 0, got {text!r}")
    return value


def _end_answer(stdout: IO[str], record: TurnRecord, progress: Progress) -> None:
    """Leave the terminal tidy: no progress line, and the answer ends with a newline."""
    progress.clear()
    if record.deltas and not record.ends_with_newline:
        try:
            stdout.write("\n")
            stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
        record.ends_with_newline = True


def _error(stderr: IO[str], message: str) -> None:
    # Every error line passes here, and many quote a router (its error body, a model id): on one
    # line, with nothing a terminal would obey.
    print(f"{PROG}: {one_line(message)}", file=stderr, flush=True)


def _silence_stdout(stdout: IO[str] | None = None) -> None:
    # Python flushes stdout at exit; with the pipe gone that would print a traceback. A stream
    # of the caller's own (a test's) is left alone: nothing flushes it at exit.
    if stdout is not None and stdout is not sys.stdout:
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
