"""The full-screen chat app: settings, the router client, the model list, and app-wide keys."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from textual import on, work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.screen import Screen
from textual.widgets import TextArea
from textual.worker import Worker, WorkerState

from xrouter_tui.api import Limits, ModelInfo, RouterError, Timeouts
from xrouter_tui.config import ConfigError, Settings, data_dir, save_setting
from xrouter_tui.history.store import Store, StoreError
from xrouter_tui.ledger import Ledger, utc_iso
from xrouter_tui.model_catalog import FALLBACK_MODELS, ModelCatalog, closest_ids, picker_order
from xrouter_tui.payments import Network, Quote, SpendingPolicy, WalletKey, format_usd
from xrouter_tui.payments.networks import atomic_to_usd
from xrouter_tui.pricing import PriceGuide
from xrouter_tui.safe_text import MALFORMED, one_line, terminal_text, valid_tx
from xrouter_tui.ui.clipboard import clipboard_command, copy_with_system_tool, last_code_block
from xrouter_tui.ui.history import export_conversation, open_history
from xrouter_tui.ui.messages import (
    ModelChanged,
    ResponseComplete,
    ResponseFailed,
    ResponseStopped,
    WalletChanged,
)
from xrouter_tui.ui.screens.chat import ChatScreen
from xrouter_tui.ui.wallet_commands import KEYRING_GROUP, WalletCommands
from xrouter_tui.ui.widgets.chat_log import AnswerFooter
from xrouter_tui.ui.widgets.prompt import PromptInput
from xrouter_tui.ui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from xrouter_tui.api import RouterClient
    from xrouter_tui.reconcile import ChainSession

__all__ = ["PROMPT_KEYS", "ChatApp", "RouterSetup"]

# Seconds from the first frame to loading what it did not need (the wallet, the router client,
# the model list). Textual draws the footer's keys in a frame of their own just after the first
# one; that frame does not wait for the loading, which then runs in threads where it can.
LOAD_AFTER_FIRST_FRAME = 0.15

# Keys the prompt box handles itself (no Binding to read them from), for the help screen.
PROMPT_KEYS: tuple[tuple[str, str], ...] = (
    ("Enter", "Send the prompt"),
    ("Shift+Enter / ctrl+j", "New line in the prompt"),
    ("Up / Down", "In an empty prompt: recall earlier prompts"),
)


@dataclass(frozen=True, slots=True)
class RouterSetup:
    """Where the chat sends its requests and with which wallet."""

    base_url: str
    account: WalletKey | None
    networks: tuple[Network, ...]
    demo: bool = False
    # Extra models to offer when the live list cannot be fetched (the demo has none to cache).
    fallback_models: tuple[ModelInfo, ...] = field(default=FALLBACK_MODELS)

    @property
    def address(self) -> str:
        return self.account.address if self.account is not None else ""


class ChatApp(App[None]):
    """xrouter-tui's full-screen chat.

    The screens that open on a key (conversations, model picker, ledger, payment, help) are
    imported when first opened: the first frame needs only the chat screen.
    """

    TITLE = "xrouter-tui"
    CSS_PATH = "app.tcss"

    BINDINGS = [
        Binding("ctrl+q", "quit", "Quit", tooltip="Quit", priority=True),
        Binding(
            "ctrl+c",
            "stop_or_copy",
            show=False,
            priority=True,
            tooltip="Stop the answer being streamed (never quits); copy a selection otherwise",
        ),
        Binding("f1", "help", "Help", tooltip="Show this help"),
        Binding("f2", "pick_model", "Model", tooltip="Pick the model for the next turns"),
        Binding(
            "ctrl+o",
            "conversations",
            "Conversations",
            tooltip="Saved conversations: open, new, rename, delete, search",
        ),
        Binding(
            "f3",
            "ledger",
            "Spend",
            tooltip="What was paid: this session, today, all time, per model, every payment",
        ),
    ]

    def __init__(
        self,
        settings: Settings,
        router: RouterSetup,
        *,
        env: Mapping[str, str] | None = None,
        model: str | None = None,
        max_tokens: int | None = None,
        conversation: int | Literal["latest"] | None = None,
    ) -> None:
        super().__init__()
        self.settings = settings
        # The conversation to open at start (`-c`: the latest, `--cid ID`: that one).
        self._open_at = conversation
        self.router = router
        self.env = os.environ if env is None else env
        self.model = model or settings.model
        self.max_tokens = max_tokens or settings.max_tokens
        self.catalog = ModelCatalog(data_dir(self.env))
        cached = None if router.demo else self.catalog.cached(router.base_url)
        self.models: list[ModelInfo] = cached or list(router.fallback_models)
        # Made on first use (see `client`): loading httpx and making its TLS context takes a
        # tenth of a second that the first frame does not wait for.
        self._client: RouterClient | None = None
        # The wallet's chain (balance, the check before signing, reconciliation): made with the
        # client, off the first frame.
        self.chain: ChainSession | None = None
        # Prices of the prompt as typed, corrected by the router's own quotes.
        self.price_guide = PriceGuide()
        # Set by "Pay, don't ask again": no more payment questions until the app quits.
        self.confirm_off = False
        self._clipboard_tool = clipboard_command(self.env)
        self.wallet_commands = WalletCommands(self)
        # The history on disk; None when it cannot be opened (the chat then goes on unsaved).
        self.store: Store | None = None
        # Every payment and the budgets; it reads and writes the history once that is open.
        self.ledger = Ledger(
            None,
            router.networks,
            session_budget_usd=settings.session_budget_usd,
            daily_budget_usd=settings.daily_budget_usd,
        )
        self._history_warned = False

    @property
    def client(self) -> RouterClient:
        """The router client: made on first use (the model list, made just after the first
        frame, usually is)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_chain(self) -> ChainSession:
        """The wallet's chain: the demo's local one, else the settings' RPC endpoints."""
        from xrouter_tui.reconcile import ChainSession

        if self.router.demo:
            urls = {net.v1_name: f"{self.router.base_url}/rpc" for net in self.router.networks}
            # A demo's chain knows only the payments of its own run.
            return ChainSession(urls, self.router.networks, since=utc_iso(time.time()))
        return ChainSession(self.settings.rpc_urls, self.router.networks)

    def _make_client(self) -> RouterClient:
        from xrouter_tui.api import RouterClient

        if self.chain is None:
            self.chain = self._make_chain()
        return RouterClient(
            self.router.base_url,
            account=self.router.account,
            policy=SpendingPolicy(
                networks=self.router.networks,
                max_per_request_usd=self.settings.max_per_request_usd,
            ),
            timeouts=Timeouts.of(self.settings),
            limits=Limits.of(self.settings),
            funds=self.chain.funds,
        )

    def get_default_screen(self) -> Screen:
        return ChatScreen()

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = False,
    ) -> None:
        """Every notification of the app (screens' and widgets' `notify` land here): its text
        without escape sequences, and plain text unless `markup` is asked for, because a
        notice often quotes the router (an error, a model id) or the history (a title)."""
        super().notify(
            terminal_text(message),
            title=one_line(title),
            severity=severity,
            timeout=timeout,
            markup=markup,
        )

    def on_mount(self) -> None:
        self._open_history()
        if self.settings.theme in self.available_themes:
            self.theme = self.settings.theme
        else:
            self.notify(f"Unknown theme {self.settings.theme!r}: using the default.")
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self.set_timer(LOAD_AFTER_FIRST_FRAME, self._load_after_first_frame)

    async def open_at_start(self, chat: ChatScreen) -> None:
        """Go on with the conversation the command line named, if it named one (the `chat`
        screen calls this once it is up); say so when there is none."""
        wanted, self._open_at = self._open_at, None
        if wanted is None:
            return
        store = self.store
        conversation_id = store.latest_conversation_id() if store and wanted == "latest" else wanted
        if isinstance(conversation_id, int) and await chat.open_conversation(conversation_id):
            return
        if wanted == "latest":
            self.notify("No conversation to continue yet: this is a new one.", title="History")
        else:
            self.notify(
                f"No conversation with id {wanted} in the history: this is a new one.",
                title="History",
                severity="warning",
            )

    def _load_after_first_frame(self) -> None:
        """What the chat needs soon but not for its first frame: the wallet (its address, or
        the keyring), the router client and the live model list."""
        chat = next((s for s in self.screen_stack if isinstance(s, ChatScreen)), None)
        if chat is None:
            return  # the app is closing already
        chat.load_wallet()
        self._fetch_models()
        if self.store is not None:
            # Up in an empty prompt recalls the questions of earlier runs too.
            with suppress(StoreError):
                chat.query_one(PromptInput).remember(self.store.recent_prompts())

    async def on_unmount(self) -> None:
        if self._client is not None:
            await self._client.aclose()
        if self.chain is not None:
            await self.chain.aclose()
        if self.store is not None:
            self.store.close()
            self.store = None
            self.ledger.store = None

    # -- the history ---------------------------------------------------------------------

    def _open_history(self) -> None:
        """Open the history `ask` writes too. A damaged or unreadable file must not keep the
        chat from working: say so once, and chat without saving."""
        try:
            self.store = open_history(self.env, demo=self.router.demo)
        except StoreError as exc:
            self.history_failed(exc, opening=True)
        self.ledger.store = self.store

    def history_failed(self, error: StoreError, *, opening: bool = False) -> None:
        """The history could not be opened or written: one notice per session, in plain words."""
        if self._history_warned:
            self.log.warning(f"history: {error}")
            return
        self._history_warned = True
        if opening:
            text = (
                "The saved conversations cannot be opened, so this chat is not saved. "
                f"The file may be damaged: move it aside to start a new history.\n{error}"
            )
        else:
            text = f"The conversation could not be saved: {error}"
        self.notify(text, title="History", severity="warning", timeout=12)

    def action_conversations(self) -> None:
        """Open the saved conversations."""
        from xrouter_tui.ui.screens.conversations import ConversationsScreen

        if isinstance(self.screen, ConversationsScreen):
            return
        if self.store is None:
            self.notify(
                "There is no history in this session: it could not be opened at start.",
                title="Conversations",
                severity="warning",
            )
            return
        self.push_screen(
            ConversationsScreen(self.store, current=self.chat.conversation_id),
            self._conversation_chosen,
        )

    async def _conversation_chosen(self, choice: int | Literal["new"] | None) -> None:
        if choice is None:
            return
        from xrouter_tui.ui.screens.conversations import NEW_CHAT

        if choice == NEW_CHAT:
            await self.chat.action_new_chat()
            return
        if not await self.chat.open_conversation(choice):
            self.notify("That conversation is not in the history any more.", severity="warning")

    def conversation_deleted(self, conversation_id: int) -> None:
        """A conversation was deleted from the history; if the chat shows it, what it says next
        starts a new one (the messages on screen stay until a new chat)."""
        chat = self.chat
        if chat.conversation_id == conversation_id:
            chat.conversation_id = None

    def export_conversation(self) -> None:
        """Write the chat's conversation as Markdown to the current folder (else the data
        folder), never over an existing file, and say where."""
        conversation_id = self.chat.conversation_id
        if self.store is None or conversation_id is None:
            self.notify(
                "Nothing to export yet: a conversation is saved with its first question.",
                title="Export",
                severity="warning",
            )
            return
        store = self.store
        self.save_export(
            "conversation", lambda folder: export_conversation(store, conversation_id, folder)
        )

    def save_export(self, what: str, write: Callable[[Path], Path | None]) -> None:
        """Write an export with `write(folder)` to the current folder, else the data folder,
        and say where, or why not (`write` gives None when there is nothing to write)."""
        problem = ""
        for folder in (Path.cwd(), data_dir(self.env)):
            try:
                path = write(folder)
            except (OSError, StoreError) as exc:
                problem = str(exc)
                continue
            if path is None:
                break
            self.notify(f"Saved as {path}", title="Export", timeout=8)
            return
        self.notify(
            f"The {what} could not be exported. {problem}".strip(),
            title="Export",
            severity="error",
        )

    @property
    def chat(self) -> ChatScreen:
        """The chat screen, wherever the screen stack stands."""
        return next(screen for screen in self.screen_stack if isinstance(screen, ChatScreen))

    # -- the model list ------------------------------------------------------------------

    @work(exclusive=True, group="models", exit_on_error=False)
    async def _fetch_models(self) -> None:
        if self._client is None:
            # Made in a thread: loading httpx and making its TLS context takes a tenth of a
            # second, which keys typed meanwhile should not wait for.
            made = await asyncio.to_thread(self._make_client)
            if self._client is None:
                made.account = self.router.account  # the wallet may have opened meanwhile
                self._client = made
            else:  # a turn needed one first
                await made.aclose()
        try:
            models = await self.client.list_models()
        except RouterError as exc:
            self.log.warning(f"model list not fetched: {exc.message}")
            return
        if not models:
            return
        self.models = models
        self._check_model(models)
        self.read_chain()
        if not self.router.demo:
            try:
                self.catalog.store(self.router.base_url, models)
            except OSError as exc:
                self.log.warning(f"model list not cached: {exc}")

    @work(exclusive=True, group="chain", exit_on_error=False)
    async def read_chain(self) -> None:
        """Read the wallet's balance for the status bar, then settle from the chain what is
        open in the ledger (outcomes, refunds): at start, after each turn, on `r` in the
        ledger. A chain that cannot be read shows the balance as unknown; nothing waits."""
        chain, account = self.chain, self.router.account
        if chain is None:
            return
        status = self.chat.query_one(StatusBar)
        if account is not None:
            balance = await chain.refresh(account.address)
            if balance is not None:
                status.balance = (
                    format_usd(atomic_to_usd(balance.atomic, balance.network.usdc.decimals))
                    if balance.atomic is not None
                    else "balance ?"
                )
        if self.store is not None:
            found = await chain.reconcile(self.store)
            if found.refunds:
                self.chat.refresh_money_lines()

    def _check_model(self, models: Sequence[ModelInfo]) -> None:
        """A model the router's live list does not have is said at once, with the closest
        ids, not when a turn fails."""
        ids = [model.id for model in models]
        if self.model in ids:
            return
        close = closest_ids(self.model, ids)
        hint = f" Closest: {', '.join(close)}." if close else ""
        self.notify(
            f"The router has no model {one_line(self.model, 80)!r}.{hint} F2 picks another.",
            title="Unknown model",
            severity="warning",
            timeout=10,
        )

    def model_info(self, model_id: str) -> ModelInfo | None:
        """The model's entry in the list, with its prices, if the list has it."""
        return next((model for model in self.models if model.id == model_id), None)

    def action_pick_model(self) -> None:
        """Open the model picker."""
        from xrouter_tui.ui.screens.model_picker import ModelPicker

        if isinstance(self.screen, ModelPicker):
            return
        recent = self.catalog.recent()
        models = picker_order(self.models, recent)
        if self.model not in {model.id for model in models}:
            models.insert(0, ModelInfo(self.model, self.model))
        self.push_screen(ModelPicker(models, current=self.model, recent=recent), self._use_model)

    def _use_model(self, model: str | None) -> None:
        if not model:
            return
        self.model = model
        self.chat.query_one(StatusBar).model = model
        try:
            if not self.router.demo:  # a demo's pick is not the user's choice for real use
                save_setting("model", model, self.env)
        except ConfigError as exc:
            self.notify(
                f"{model} is used now but could not be remembered: {exc}", severity="warning"
            )
        self.chat.post_message(ModelChanged(model))
        self.notify(f"Model: {model}", timeout=2)

    def remember_model_use(self, model: str) -> None:
        """Count `model` as used lately, so the picker lists it first next time (not in the
        demo, whose models are the local router's)."""
        if self.router.demo:
            return
        try:
            self.catalog.remember(model)
        except OSError as exc:
            self.log.warning(f"recent models not saved: {exc}")

    # -- the wallet ----------------------------------------------------------------------

    def use_account(self, account: WalletKey | None) -> None:
        """Pay for the next turns from `account` (None: no wallet), and show its address."""
        self.router = replace(self.router, account=account)
        if self._client is not None:
            self._client.account = account
        self.chat.query_one(StatusBar).wallet = self.router.address
        self.chat.post_message(WalletChanged(self.router.address))

    @on(Worker.StateChanged)
    def _keyring_failed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == KEYRING_GROUP and event.state is WorkerState.ERROR:
            self.wallet_commands.failed(event.worker.error)

    # -- money ---------------------------------------------------------------------------

    def action_ledger(self) -> None:
        """Open the ledger of payments."""
        from xrouter_tui.ui.screens.ledger import LedgerScreen

        if isinstance(self.screen, LedgerScreen):
            return
        self.push_screen(LedgerScreen(self.ledger))

    async def confirm_payment(self, quote: Quote, model: str) -> bool:
        """Ask before paying above `confirm_above_usd` (unless the user said not to ask again
        this session); True to pay. Call it from a worker: it waits for the answer."""
        from xrouter_tui.ui.screens.payment import PaymentChoice, PaymentDialog

        threshold = self.settings.confirm_above_usd
        if self.confirm_off or quote.amount_usd <= threshold:
            return True
        choice = await self.push_screen_wait(
            PaymentDialog(quote, model=model, threshold_usd=format_usd(threshold))
        )
        if choice is PaymentChoice.PAY_ALWAYS:
            self.confirm_off = True
        return choice in (PaymentChoice.PAY, PaymentChoice.PAY_ALWAYS)

    @on(ResponseComplete)
    @on(ResponseFailed)
    @on(ResponseStopped)
    def _turn_ended(self) -> None:
        # The balance moved, or a payment's outcome may be on chain by now.
        if self.chain is not None:
            self.read_chain()

    @on(AnswerFooter.CopyTransaction)
    async def _copy_transaction(self, event: AnswerFooter.CopyTransaction) -> None:
        tx = valid_tx(event.tx)
        if tx is not None:
            await self.copy_message(tx, "the transaction hash")

    async def copy_last_transaction(self) -> None:
        """Copy the transaction hash of the newest answer that has one, if it is a hash."""
        for message in reversed(self.chat.conversation.messages):
            receipt = message.receipt
            if receipt is not None and receipt.success and receipt.transaction:
                tx = valid_tx(receipt.transaction)
                if tx is None:
                    # The router's word, and not a hash: pasted anywhere it could do harm.
                    self.notify(
                        f"The last transaction is {MALFORMED}: the router did not send a "
                        "transaction hash, so nothing was copied.",
                        severity="warning",
                    )
                    return
                await self.copy_message(tx, "the last transaction hash")
                return
        self.notify("No answer in this chat has a transaction yet.", severity="warning")

    # -- keys ----------------------------------------------------------------------------

    def action_stop_or_copy(self) -> None:
        """ctrl+c: stop a streaming answer; copy the selection otherwise; never quit."""
        chat = self.chat
        if chat.streaming:
            chat.action_stop()
            return
        focused = self.focused
        if isinstance(focused, TextArea) and focused.selected_text:
            focused.action_copy()
            return
        self.notify("ctrl+c stops an answer; ctrl+q quits.", timeout=3)

    def action_help(self) -> None:
        """Show every key."""
        from xrouter_tui.ui.screens.help import HelpScreen

        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(self.key_rows()))

    def key_rows(self) -> list[tuple[str, str]]:
        """Every key the chat answers to, with what it does."""
        from xrouter_tui.ui.screens.help import binding_rows

        return [
            *PROMPT_KEYS,
            *binding_rows(ChatScreen.BINDINGS),  # type: ignore[arg-type]
            *binding_rows(self.BINDINGS),  # type: ignore[arg-type]
            (
                "ctrl+p",
                "Open the command palette: new chat, conversations, export, ledger, model, "
                "copy, wallet, theme, quit",
            ),
            ("Esc (in the picker)", "Close the model picker"),
            (
                "n r d / (in conversations)",
                "New chat, rename, delete (asks first), search every message",
            ),
            ("c x r (in the ledger)", "Copy the payment's tx, export CSV, reload"),
            ("y a n (paying)", "Pay, pay and don't ask again this session, cancel"),
        ]

    # -- the command palette -------------------------------------------------------------

    def action_command_palette(self) -> None:
        # The app's own palette: Enter runs the entry listed for the text as typed.
        from xrouter_tui.ui.palette import Palette

        if self.use_command_palette and not Palette.is_open(self):
            self.push_screen(Palette(id="--command-palette"))

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        chat = self.chat
        yield SystemCommand("New chat", "Start a new conversation", chat.action_new_chat)
        yield SystemCommand(
            "Conversation settings",
            "This conversation's system prompt, temperature and max_tokens (kept with it)",
            chat.action_conversation_settings,
        )
        yield SystemCommand(
            "Compose in editor",
            "Write the prompt in $VISUAL or $EDITOR (ctrl+g)",
            chat.action_compose_in_editor,
        )
        if chat.was_cut:
            yield SystemCommand(
                "Continue the answer",
                "The last answer was cut at max_tokens: send 'Continue.' as a new, priced turn",
                chat.continue_answer,
            )
        if chat.can_retry:
            yield SystemCommand(
                "Retry with the same payment",
                "Ask again for the lost answer with the payment signed for it (ctrl+r): it "
                "cannot be charged twice",
                chat.action_retry,
            )
        yield SystemCommand(
            "Conversations",
            "Open, rename, delete or search the saved conversations",
            self.action_conversations,
        )
        yield SystemCommand(
            "Export conversation",
            "Write this conversation as Markdown to conversation-ID.md",
            self.export_conversation,
        )
        yield SystemCommand(
            "Spending ledger",
            "What was paid: this session, today, all time, per model; export as CSV",
            self.action_ledger,
        )
        yield SystemCommand(
            "Switch model", "Pick the model for the next turns", self.action_pick_model
        )
        yield SystemCommand(
            "Copy last answer", "Copy the last answer's text", self.copy_last_answer
        )
        yield SystemCommand(
            "Copy last code block",
            "Copy the last code block of the last answer",
            self.copy_last_code,
        )
        yield SystemCommand(
            "Copy last transaction",
            "Copy the transaction hash of the last paid answer",
            self.copy_last_transaction,
        )
        yield from self.wallet_commands.commands()
        yield SystemCommand("Theme", "Change the colours (remembered)", self.action_change_theme)
        yield SystemCommand("Keys", "Show every key", self.action_help)
        yield SystemCommand("Quit", "Quit xrouter-tui", self.action_quit)

    async def copy_last_answer(self) -> None:
        """Copy the newest answer's text."""
        answer = self.chat.conversation.last_answer()
        if answer is None:
            self.notify("There is no answer to copy yet.", severity="warning")
            return
        await self.copy_message(answer.content, "the last answer")

    async def copy_last_code(self) -> None:
        """Copy the last code block of the newest answer."""
        answer = self.chat.conversation.last_answer()
        # Found in the text as shown: a block the filter emptied is not there to copy.
        code = last_code_block(terminal_text(answer.content)) if answer is not None else None
        if code is None:
            self.notify("The last answer has no code block.", severity="warning")
            return
        await self.copy_message(code, "the last code block")

    async def copy_message(self, text: str, what: str) -> None:
        """Copy `text` and say `what` it was, and how it was copied."""
        text = terminal_text(text)
        how = await self.copy_text(text)
        self.notify(f"Copied {what} ({len(text)} characters) {how}.")

    async def copy_text(self, text: str) -> str:
        """Copy `text`, without escape sequences or control characters, through the terminal
        and, where there is one, the system's clipboard tool; returns how, in words ("with
        xclip", "through the terminal").

        Filtered because what is copied is pasted: into a terminal, an escape sequence or a
        carriage return in an answer would run there.
        """
        text = terminal_text(text)
        self.copy_to_clipboard(text)
        tool = self._clipboard_tool
        if tool is not None and await copy_with_system_tool(text, tool):
            return f"with {tool[0]}"
        return "through the terminal"

    def _remember_theme(self, theme: object) -> None:
        if self.router.demo:
            return  # the demo never writes the user's config.toml
        try:
            save_setting("theme", self.theme, self.env)
        except ConfigError as exc:
            self.notify(f"The theme could not be remembered: {exc}", severity="warning")
