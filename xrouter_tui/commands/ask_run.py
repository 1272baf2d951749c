"""The run of `xrouter-tui ask`: one question, answered, paid into the ledger and, unless
--no-history, saved as it goes."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from contextlib import suppress
from typing import TYPE_CHECKING

from xrouter_tui.api import (
    Limits,
    ModelInfo,
    NoWallet,
    PaymentRejected,
    RouterClient,
    RouterError,
    Timeouts,
    payment_note,
)
from xrouter_tui.commands.ask_context import UnknownModel, fitted_request, known_model
from xrouter_tui.commands.ask_turn import (
    AnswerOutput,
    AskRequest,
    Progress,
    TurnRecord,
    answer_output,
    build_messages,
    read_prompt,
    stream_answer,
)
from xrouter_tui.commands.console import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    PROG,
    Console,
    silence_stdout,
)
from xrouter_tui.commands.routing import command_settings, no_wallet, router_for
from xrouter_tui.commands.terminal import ask_yes_no, is_terminal
from xrouter_tui.config import Settings
from xrouter_tui.context import PromptTooLong, check_length
from xrouter_tui.history.journal import TurnJournal, history_path
from xrouter_tui.history.store import ConversationInfo, Store, StoreError
from xrouter_tui.ledger import Ledger, utc_iso
from xrouter_tui.payments import (
    Network,
    PaymentRefused,
    Quote,
    SignedPayment,
    SpendingPolicy,
    format_usd,
    short_address,
    unconfirmed,
)
from xrouter_tui.pricing import shorter_max_tokens
from xrouter_tui.resends import Resend, kept_resend, last_unanswered, not_resendable
from xrouter_tui.safe_text import json_text, one_line

if TYPE_CHECKING:
    from xrouter_tui.chain import ChainReaders

__all__ = ["run_ask"]

# The most an `ask` spends looking up earlier payments on chain, beside its own turn.
_RECONCILE_SECONDS = 15.0
# How long `ask --demo` waits for its refund on the demo's chain after the answer.
_DEMO_REFUND_SECONDS = 1.5


def run_ask(args: argparse.Namespace, console: Console) -> int:
    settings = command_settings(args, console.env)
    if args.retry:
        if args.prompt:
            console.error("--retry sends the lost question again: give no prompt with it.")
            return EXIT_USAGE
        if not (args.continue_latest or args.cid is not None):
            console.error("--retry needs the conversation: -c (the latest) or --cid ID.")
            return EXIT_USAGE
        with Store.open(history_path(console.env, demo=args.demo)) as store:
            return _retry(args, console, settings, store)
    prompt = read_prompt(args.prompt, console.stdin)
    try:
        check_length("The prompt", prompt)  # refused before anything is opened or sent
    except PromptTooLong as exc:
        console.error(str(exc))
        return EXIT_USAGE
    # The ledger lives in the history, so budgets hold even for --no-history (the demo's in
    # its own).
    with Store.open(history_path(console.env, demo=args.demo)) as store:
        return _ask_and_answer(args, console, settings, prompt, store)


def _continued(args: argparse.Namespace, console: Console, store: Store) -> ConversationInfo | None:
    """The conversation -c or --cid names; None (and the error said) when there is none."""
    conversation_id = store.latest_conversation_id() if args.continue_latest else args.cid
    info = store.conversation(conversation_id) if conversation_id is not None else None
    if info is None:
        console.error(
            "no conversation to continue yet."
            if args.continue_latest
            else f"no conversation with id {args.cid} (`{PROG} history` lists them)."
        )
    return info


def _retry(args: argparse.Namespace, console: Console, settings: Settings, store: Store) -> int:
    """`ask -c --retry`: the conversation's last question whose paid answer was lost, sent again
    with its own payment while that is valid (it can be charged once at most)."""
    info = _continued(args, console, store)
    if info is None:
        return EXIT_USAGE
    messages = store.messages(info.id)
    lost = last_unanswered(messages)
    if lost is None:
        console.error(
            f"nothing to retry: the last question of conversation {info.id} has its answer."
        )
        return EXIT_USAGE
    if lost.payment is None:
        console.error(
            f"nothing to retry: the last question of conversation {info.id} was never paid for "
            f"(it failed with: {one_line(lost.error, 200) or 'no answer'}). Ask it again."
        )
        return EXIT_USAGE
    resend = kept_resend(store, lost.payment)
    if resend is None:
        console.error(not_resendable(lost.payment))
        return EXIT_REFUSED
    question = next(
        (m.content for m in reversed(messages) if m.role == "user" and m.id < lost.id), ""
    )
    request = AskRequest(
        prompt=question,
        model=str(resend.body.get("model") or lost.model),
        max_tokens=int(resend.body.get("max_tokens") or settings.max_tokens),
        system=info.system_prompt,
    )
    return _answer(args, console, settings, store, request, info.id, resend=resend)


def _ask_and_answer(
    args: argparse.Namespace, console: Console, settings: Settings, prompt: str, store: Store
) -> int:
    """One question, answered, paid into the ledger and, unless --no-history, saved as it
    goes."""
    system = settings.system_prompt if args.system is None else args.system
    model = args.model or settings.model
    earlier: tuple[dict[str, str], ...] = ()
    conversation_id: int | None = None
    max_tokens, temperature = args.max_tokens or settings.max_tokens, settings.temperature
    if args.continue_latest or args.cid is not None:
        info = _continued(args, console, store)
        if info is None:
            return EXIT_USAGE
        conversation_id = info.id
        # Going on with a conversation keeps its model, system prompt and own settings unless
        # told otherwise.
        model = args.model or info.model or model
        max_tokens = args.max_tokens or info.max_tokens or settings.max_tokens
        if info.temperature is not None:
            temperature = info.temperature
        if args.system is None:
            system = info.system_prompt
        elif args.system != info.system_prompt:
            store.set_system_prompt(info.id, args.system)
        earlier = tuple(m for m in store.history_messages(info.id) if m["role"] != "system")
    request = AskRequest(
        prompt=prompt,
        model=model,
        max_tokens=max_tokens,
        system=system,
        temperature=temperature,
        earlier=earlier,
    )
    return _answer(args, console, settings, store, request, conversation_id)


def _answer(
    args: argparse.Namespace,
    console: Console,
    settings: Settings,
    store: Store,
    request: AskRequest,
    conversation_id: int | None,
    *,
    resend: Resend | None = None,
) -> int:
    """Ask `request` (or send `resend` again), stream the answer, and keep what happened."""
    stdin, stdout, stderr = console.stdin, console.stdout, console.stderr
    model = request.model
    with router_for(args, settings, console.env, stderr) as (base_url, account, networks, models):
        if account is None and resend is None:
            # A resend is signed already: it needs no key.
            console.error(no_wallet("ask"))
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
        if resend is None:
            # Before anything is saved or paid: a model the router has, and what fits.
            try:
                model_info = known_model(request.model, models, base_url, settings)
                request = fitted_request(request, model_info, settings, stderr)
            except (UnknownModel, PromptTooLong) as exc:
                console.error(str(exc))
                return EXIT_USAGE
        else:
            model_info = next((m for m in models if m.id == request.model), None)
        record = TurnRecord(model=request.model, model_info=model_info)
        progress = Progress(stderr, enabled=is_terminal(stderr))
        answer = answer_output(
            stdout,
            console.env,
            progress,
            as_json=args.json,
            raw=args.raw,
            on_terminal=is_terminal(stdout),
        )
        journal = None
        if not args.no_history:
            journal = TurnJournal(
                store, conversation_id=conversation_id, model=model, system_prompt=request.system
            )
            if resend is not None:
                journal.resume(resend.message_id)
            else:
                conversation_id = journal.begin(request.prompt)  # before any network I/O

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

        # The chain: the demo's local one on the router's port, else each network's endpoint.
        rpc_urls = {networks[0].v1_name: f"{base_url}/rpc"} if args.demo else settings.rpc_urls

        async def turn() -> None:
            from xrouter_tui.chain import BalanceWatch, ChainReaders
            from xrouter_tui.reconcile import reconcile_within

            turn_started = utc_iso(time.time() - 1)

            readers = ChainReaders(rpc_urls, limits=Limits.of(settings))
            watch = BalanceWatch(readers)
            if account is not None and resend is None:
                # Read beside the unpaid request: the check before signing takes the figure if
                # it came in time, and never waits long for it.
                for network in networks:
                    watch.refresh(network, account.address)
            # Earlier payments whose outcome or refund is open, looked up meanwhile (the demo's
            # were made on chains that ended with their demo): what is not done when the answer
            # is, waits for the next run.
            checking = (
                None
                if args.demo
                else asyncio.ensure_future(
                    reconcile_within(store, readers, networks, deadline=_RECONCILE_SECONDS)
                )
            )
            try:
                async with RouterClient(
                    base_url,
                    account=account,
                    policy=policy,
                    timeouts=Timeouts.of(settings),
                    limits=Limits.of(settings),
                    funds=watch.funds,
                ) as client:
                    await stream_answer(
                        client,
                        request,
                        record,
                        answer=answer,
                        progress=progress,
                        ledger=ledger,
                        journal=journal,
                        confirm=confirm,
                        resend=resend,
                    )
                if args.demo and record.accepted:
                    # The demo's chain ends with this run: its refund is seen now or never.
                    await _demo_refund(store, readers, networks, since=turn_started)
            finally:
                if checking is not None:
                    checking.cancel()
                    with suppress(asyncio.CancelledError, Exception):
                        await checking
                await watch.aclose()
                await readers.aclose()

        try:
            asyncio.run(turn())
        except BrokenPipeError:
            # The reader of our stdout went away (`| head`): stop quietly, the turn is over.
            silence_stdout()
            ledger.failed(record.payment, BrokenPipeError(), accepted=record.accepted)
            if journal is not None:
                journal.finish("stopped", usage=record.usage, error="the output was closed")
            return EXIT_FAILED
        except (KeyboardInterrupt, PaymentRefused, RouterError, StoreError) as exc:
            _end_answer(answer, progress)
            if isinstance(exc, StoreError):
                message, code = str(exc), EXIT_FAILED
            else:
                message, code = _turn_failure(exc, record)
            if isinstance(exc, PaymentRefused):
                message = ledger.explain(exc) + _shorter_hint(exc, request, model_info)
            ledger.failed(record.payment, exc, accepted=record.accepted)
            if journal is not None:
                _save_failure(journal, exc, record, message)
            if (
                conversation_id is not None
                and not record.deltas
                and not isinstance(exc, KeyboardInterrupt | PaymentRejected)
            ):
                # An answer lost before any of it came (a refused payment is not offered: the
                # refusal would repeat).
                message += _resend_hint(ledger, record.payment, conversation_id, demo=args.demo)
            console.error(message)
            if args.json:
                status = "stopped" if isinstance(exc, KeyboardInterrupt) else "failed"
                _print_document(
                    console, record.document(status, conversation_id, one_line(message))
                )
            return code
        except BaseException as exc:
            # Whatever else went wrong, the answer is not left `streaming`.
            ledger.failed(record.payment, exc, accepted=record.accepted)
            if journal is not None:
                _save_failure(journal, exc, record, f"{type(exc).__name__}: {exc}")
            raise
        _end_answer(answer, progress)
        if journal is not None:
            journal.finish("complete", usage=record.usage)
        summary = record.summary()
        if conversation_id is not None:
            summary += f" · {'demo ' if args.demo else ''}conversation {conversation_id}"
        print(summary, file=stderr, flush=True)
        if record.finish_reason == "length":
            print(
                f"The answer was cut at max_tokens ({request.max_tokens}): ask with a larger "
                "--max-tokens for a longer one.",
                file=stderr,
                flush=True,
            )
        if args.json:
            _print_document(console, record.document("complete", conversation_id))
        return EXIT_OK


async def _demo_refund(
    store: Store, readers: ChainReaders, networks: tuple[Network, ...], *, since: str
) -> None:
    """Look for the demo turn's refund on the demo's chain: the local router sends it once the
    answer is out, moments later. Given up after a second and a half."""
    from xrouter_tui.reconcile import reconcile_within

    loop = asyncio.get_running_loop()
    until = loop.time() + _DEMO_REFUND_SECONDS
    while loop.time() < until:
        found = await reconcile_within(store, readers, networks, deadline=1.0, since=since)
        if found.refunds or found.errors:
            return
        await asyncio.sleep(0.1)


def _resend_hint(
    ledger: Ledger, payment: SignedPayment | None, conversation_id: int, *, demo: bool
) -> str:
    """When the lost answer's payment can be sent again, how (a sentence to end the error)."""
    resend = ledger.resend_of(payment)
    if resend is None:
        return ""
    until = time.strftime("%H:%M:%S", time.localtime(resend.payment.valid_before))
    return (
        f" To ask for it again with the same payment (it cannot be charged twice), until "
        f"{until}: {PROG} ask{' --demo' if demo else ''} --cid {conversation_id} --retry"
    )


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


def _end_answer(answer: AnswerOutput, progress: Progress) -> None:
    """Leave the terminal tidy: no progress line, and the answer written whole (what an open
    Markdown block held back) and ended with a newline."""
    progress.clear()
    try:
        answer.end()
    except BrokenPipeError:
        silence_stdout()


def _print_document(console: Console, document: dict[str, object]) -> None:
    """`ask --json`'s one document on stdout, at the end of the turn however it ended."""
    try:
        print(json_text(document), file=console.stdout, flush=True)
    except BrokenPipeError:
        silence_stdout()
