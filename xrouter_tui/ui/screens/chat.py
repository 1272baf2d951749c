"""The chat screen: the message log, the prompt box and the status bar, and the streaming worker."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual import on, work
from textual.app import ComposeResult, SuspendNotSupported
from textual.binding import Binding
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer
from textual.worker import Worker

from xrouter_tui.api import ModelInfo, PaymentDeclined, PaymentRejected, RouterError, payment_note
from xrouter_tui.charges import Charge
from xrouter_tui.chat import ChatMessage, Conversation, MessageStatus
from xrouter_tui.context import Context, PromptTooLong, choose_context, short_tokens
from xrouter_tui.history.journal import TurnJournal
from xrouter_tui.history.store import StoredMessage, StoreError
from xrouter_tui.payments import PaymentRefused, Quote, SignedPayment, format_usd
from xrouter_tui.pricing import shorter_max_tokens
from xrouter_tui.resends import MIN_SECONDS_LEFT as RESEND_MARGIN
from xrouter_tui.resends import Resend, kept_resend, last_unanswered
from xrouter_tui.safe_text import terminal_text
from xrouter_tui.ui.clipboard import code_blocks
from xrouter_tui.ui.editor import EditorError, edit_in_editor
from xrouter_tui.ui.history import conversation_from_store, shown_messages, stored_footer
from xrouter_tui.ui.message_cursor import MessageCursor
from xrouter_tui.ui.messages import (
    ModelChanged,
    ResponseComplete,
    ResponseFailed,
    ResponseStarted,
    ResponseStopped,
)
from xrouter_tui.ui.screens.confirm import ConfirmDialog
from xrouter_tui.ui.screens.conversation_settings import ConversationSettings, SettingsDialog
from xrouter_tui.ui.turn import TurnSettings, TurnStats, run_turn
from xrouter_tui.ui.widgets.chat_log import AnswerMessage, ChatLog, RetryHint, UserMessage
from xrouter_tui.ui.widgets.prompt import PromptInput
from xrouter_tui.ui.widgets.status_bar import ChatState, StatusBar
from xrouter_tui.wallet import key_source

if TYPE_CHECKING:
    from xrouter_tui.ui.app import ChatApp

__all__ = ["ChatScreen", "answer_footer"]

# How often the status bar samples the live token count while an answer streams.
STATUS_INTERVAL = 0.1
# How long the typing pauses before the price of the prompt is worked out again.
ESTIMATE_DELAY = 0.2
# The garbage collector's thresholds while an answer streams. Each frame of a streaming answer
# leaves thousands of short-lived cyclic objects (strips and their caches); CPython's default
# young generation (700) promotes them, and a full collection of the whole heap (0.1-0.3 s on a
# long answer) then stalls the stream and the keys about once a second. A young generation of
# 10,000 lets them die young (a collection of it takes 1-3 ms), and full collections wait.
STREAMING_GC_THRESHOLDS = (10_000, 10, 100)


class ChatScreen(Screen[None]):
    """One conversation. Keys for the whole app live on `ChatApp`; these act on the chat."""

    AUTO_FOCUS = "PromptInput"

    BINDINGS = [
        Binding("escape", "stop", "Stop", tooltip="Stop the answer being streamed"),
        Binding("ctrl+n", "new_chat", "New chat", tooltip="Start a new conversation"),
        Binding(
            "ctrl+r",
            "retry",
            "Retry same payment",
            tooltip="Ask again for a lost answer with the payment already signed for it, while "
            "it is valid: it cannot be charged twice",
        ),
        Binding(
            "ctrl+g",
            "compose_in_editor",
            "Editor",
            tooltip="Write the prompt in $VISUAL or $EDITOR; the edited text comes back here",
        ),
        # The message cursor: priority, so that the prompt (which keeps the focus) does not
        # take them first; without a selected message they fall through to the prompt.
        Binding(
            "alt+up",
            "select_message(-1)",
            "Select",
            priority=True,
            show=False,
            tooltip="Select the previous message (c copy, b code, e edit, r regenerate)",
        ),
        Binding(
            "alt+down",
            "select_message(1)",
            "Next",
            priority=True,
            show=False,
            tooltip="Select the next message",
        ),
        Binding("c", "copy_message", "Copy", priority=True, tooltip="Selected: copy it"),
        Binding(
            "b",
            "copy_code",
            "Code",
            priority=True,
            tooltip="Selected: copy its code block (again: the next one)",
        ),
        Binding(
            "e",
            "edit_message",
            "Edit",
            priority=True,
            tooltip="Selected question: edit it in the prompt; sent, it goes to a fork",
        ),
        Binding(
            "r",
            "regenerate",
            "Regenerate",
            priority=True,
            tooltip="Selected answer: ask its question again in a fork (F2 first for another "
            "model)",
        ),
        Binding(
            "t",
            "fold_thinking",
            "Thinking",
            priority=True,
            tooltip="Selected answer: fold its thinking (the model's reasoning) away, or back",
        ),
        Binding(
            "escape",
            "back_to_prompt",
            "Back",
            priority=True,
            tooltip="Leave the selected message (or the fork being edited) for the prompt",
        ),
    ]

    # Reading the conversation while the prompt keeps the focus: priority, or the prompt (a
    # TextArea) would take PageUp/PageDown for its own cursor. The log does the scrolling.
    BINDINGS += [
        Binding(
            "pageup",
            "log_page_up",
            "Page up",
            priority=True,
            show=False,
            tooltip="Scroll the conversation up a page (older messages load as it goes)",
        ),
        Binding(
            "pagedown",
            "log_page_down",
            "Page down",
            priority=True,
            show=False,
            tooltip="Scroll the conversation down a page; at the bottom it follows the answer",
        ),
        Binding(
            "ctrl+home",
            "log_first",
            "First message",
            priority=True,
            show=False,
            tooltip="Go to the first message of the conversation",
        ),
        Binding(
            "ctrl+end",
            "log_last",
            "Last message",
            priority=True,
            show=False,
            tooltip="Go to the last message and follow the answer being streamed",
        ),
    ]

    def action_log_page_up(self) -> None:
        """Scroll the conversation up a page."""
        self.query_one(ChatLog).page_up()

    def action_log_page_down(self) -> None:
        """Scroll the conversation down a page."""
        self.query_one(ChatLog).page_down()

    async def action_log_first(self) -> None:
        """Go to the first message, every older one mounted on the way."""
        await self.query_one(ChatLog).to_first()

    def action_log_last(self) -> None:
        """Go to the last message, and follow the stream again."""
        self.query_one(ChatLog).to_last()

    app: ChatApp

    def __init__(self) -> None:
        super().__init__()
        self.conversation = Conversation()
        # The conversation's row in the history; None until its first question is saved.
        self.conversation_id: int | None = None
        self._stats: TurnStats | None = None
        self._ticker: Timer | None = None
        self._estimate_timer: Timer | None = None
        # The last turn, when its paid answer was lost and its payment can be sent again.
        self._lost: _LostAnswer | None = None
        self.cursor = MessageCursor()
        # While an earlier question is edited or asked again: how many of the conversation's
        # messages the fork keeps (those before that question).
        self._fork_at: int | None = None

    def compose(self) -> ComposeResult:
        yield ChatLog(id="chat-log")
        yield PromptInput(id="prompt")
        yield StatusBar(demo=self.app.router.demo, id="status")
        yield Footer()

    def on_mount(self) -> None:
        self.conversation.system_prompt = self.app.settings.system_prompt
        self.call_after_refresh(self.app.open_at_start, self)
        status = self.query_one(StatusBar)
        status.model = self.app.model
        router = self.app.router
        if router.demo:
            self.notify(
                "A local router and a throwaway wallet on a test network: no real money moves.",
                title="Demo mode",
                timeout=6,
            )

    def load_wallet(self) -> None:
        """Show the wallet's address, or read the keyring for one (the app calls this once its
        first frame is drawn)."""
        router = self.app.router
        if router.account is not None:
            self._show_address()
        elif not router.demo and key_source(self.app.env) == "keyring":
            # In a thread: a locked keyring may take its time, or ask to be unlocked.
            self.app.wallet_commands.open_keyring()

    @work(thread=True, group="wallet-address", exit_on_error=False)
    def _show_address(self) -> None:
        # In a thread: the address is worked out from the key (loading coincurve and Keccak).
        address = self.app.router.address
        self.app.call_from_thread(setattr, self.query_one(StatusBar), "wallet", address)

    @property
    def streaming(self) -> bool:
        """True while an answer is on its way."""
        return any(worker.is_running for worker in self.workers if worker.group == "turn")

    @property
    def max_tokens(self) -> int:
        """The max_tokens of this conversation's turns: its own, else the user's."""
        return self.conversation.max_tokens or self.app.max_tokens

    @property
    def temperature(self) -> float | None:
        """The temperature of its turns: its own, else the user's (None: the router's)."""
        own = self.conversation.temperature
        return own if own is not None else self.app.settings.temperature

    def action_conversation_settings(self) -> None:
        """Edit this conversation's system prompt, temperature and max_tokens (saved with it,
        and used by `ask -c` too)."""
        conversation = self.conversation
        current = ConversationSettings(
            conversation.system_prompt, conversation.temperature, conversation.max_tokens
        )
        defaults = ConversationSettings(
            self.app.settings.system_prompt, self.app.settings.temperature, self.app.max_tokens
        )
        self.app.push_screen(SettingsDialog(current, defaults), self._use_settings)

    def _use_settings(self, chosen: ConversationSettings | None) -> None:
        if chosen is None:
            return
        conversation = self.conversation
        conversation.system_prompt = chosen.system_prompt
        conversation.temperature, conversation.max_tokens = chosen.temperature, chosen.max_tokens
        self._save_settings()
        self._show_settings()
        self.show_estimate()
        self.notify("Saved for this conversation.", title="Settings", timeout=3)

    def _save_settings(self) -> None:
        """Keep the conversation's settings in the history (once it is there)."""
        store, conversation = self.app.store, self.conversation
        if store is None or self.conversation_id is None:
            return
        try:
            store.set_settings(
                self.conversation_id,
                system_prompt=conversation.system_prompt,
                temperature=conversation.temperature,
                max_tokens=conversation.max_tokens,
            )
        except StoreError as exc:
            self.app.history_failed(exc)

    def _show_settings(self) -> None:
        """The conversation's own settings in the status bar, where they differ from the
        user's."""
        conversation, settings = self.conversation, self.app.settings
        own: list[str] = []
        if conversation.system_prompt != settings.system_prompt:
            own.append("own system prompt")
        if conversation.temperature is not None:
            own.append(f"temp {conversation.temperature:g}")
        if conversation.max_tokens is not None:
            own.append(f"max {conversation.max_tokens}")
        self.query_one(StatusBar).conversation_settings = " · ".join(own)

    @property
    def was_cut(self) -> bool:
        """True when the last answer was cut at max_tokens and nothing streams now."""
        answer = self.conversation.last_answer()
        return answer is not None and answer.cut_at is not None and not self.streaming

    async def continue_answer(self) -> None:
        """Ask the model to go on where its answer was cut: "Continue." as a new, priced
        turn (its price shows as for any turn)."""
        await self.send("Continue.")

    @property
    def can_retry(self) -> bool:
        """True when the last answer was lost and its payment can be sent again (ctrl+r)."""
        return self._lost is not None and not self.streaming

    @on(Worker.StateChanged)
    def _turn_state_changed(self, event: Worker.StateChanged) -> None:
        # "Stop" is in the footer only while a turn runs.
        if event.worker.group == "turn":
            self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # Shown in the footer only while there is an answer to stop, or a lost one to fetch.
        if action == "stop":
            return self.streaming
        if action == "retry":
            return self.can_retry
        if action in _ON_SELECTED:
            selected = self._selected()
            if selected is None:
                return False
            role = selected[1].role
            if action == "edit_message":
                return role == "user" and not self.streaming
            if action == "regenerate":
                return role == "assistant" and not self.streaming
            if action == "fold_thinking":
                widget = self.cursor.widget
                return isinstance(widget, AnswerMessage) and widget.thinking.parent is not None
            return True
        if action == "back_to_prompt":
            return self.cursor.active or self._fork_at is not None
        return True

    # -- the price of the prompt as typed -------------------------------------------------

    @on(PromptInput.Changed)
    def _prompt_changed(self) -> None:
        if self.cursor.active:
            self._leave_cursor()  # typing goes back to the prompt
        # Debounced: the figure follows the typing without a sum per key.
        if self._estimate_timer is not None:
            self._estimate_timer.stop()
        self._estimate_timer = self.set_timer(ESTIMATE_DELAY, self.show_estimate)

    @on(ModelChanged)
    def _model_changed(self) -> None:
        self.show_estimate()

    def show_estimate(self) -> None:
        """Show what the prompt as typed would be charged up front at most, from the model's
        prices, the conversation so far and `max_tokens`; nothing is sent anywhere."""
        self._estimate_timer = None
        status = self.query_one(StatusBar)
        text = self.query_one(PromptInput).full_text
        model = self.app.model_info(self.app.model)
        status.estimate, status.context = None, ""
        if not text.strip() or model is None:
            return
        try:
            # Exactly the messages the turn would send.
            context = self.choose_context(text, self.max_tokens)
        except PromptTooLong:
            return  # said when it is sent
        guide = self.app.price_guide
        status.estimate = guide.estimate(model, context.messages, self.max_tokens)
        history_usd = guide.input_usd(model, context.history_tokens)
        if context.history_tokens and history_usd is not None:
            status.context = (
                f"{short_tokens(context.history_tokens)} tok · {format_usd(history_usd)}"
            )

    def choose_context(self, text: str, max_tokens: int) -> Context:
        """What a turn asking `text` sends: the newest exchanges that fit (see `context`); in
        a fork being made, those before the question it starts at."""
        model = self.app.model_info(self.app.model)
        conversation = self.conversation
        if self._fork_at is not None:
            conversation = Conversation(
                system_prompt=conversation.system_prompt,
                messages=conversation.messages[: self._fork_at],
            )
        return choose_context(
            conversation.system_prompt,
            conversation.earlier(),
            text,
            context_length=model.context_length if model is not None else None,
            max_tokens=max_tokens,
            max_exchanges=self.app.settings.context_messages,
        )

    async def _mark_context(self, context: Context, *, sending: bool = True) -> None:
        """The marker above the oldest message sent, when older ones are left out; `sending`:
        for the turn just added (its question is the newest message)."""
        log = self.query_one(ChatLog)
        if not context.left_out:
            await log.mark_context(None, "")
            return
        pairs = self.conversation.exchanges()
        left = context.left_out // 2  # the chat's exchanges are a question and an answer each
        messages = self.conversation.messages
        if left < len(pairs):
            first = pairs[left][0]
        elif sending:
            first = messages[-2]  # every earlier exchange is left out: the turn being sent
        else:
            await log.mark_context(None, "")
            return
        index = next(i for i, message in enumerate(messages) if message is first)
        text = (
            f"older messages are not sent: {context.left_out} messages, "
            f"~{short_tokens(context.left_out_tokens)} tokens"
        )
        await log.mark_context(len(messages) - index, text)

    # -- a turn --------------------------------------------------------------------------

    @on(PromptInput.Submitted)
    async def _send(self, event: PromptInput.Submitted) -> None:
        await self.send(event.text)

    async def send(self, text: str, *, max_tokens: int | None = None) -> None:
        """Ask `text` of the current model; `max_tokens`, when given, for this turn only."""
        prompt = self.query_one(PromptInput)
        if self.streaming:
            prompt.restore(text)
            self.notify("An answer is still streaming: Esc stops it.", severity="warning")
            return
        self._forget_lost()
        max_tokens = max_tokens or self.max_tokens
        try:
            context = self.choose_context(text, max_tokens)
        except PromptTooLong as exc:
            # Nothing is sent, and the text stays where it was typed.
            prompt.restore(text)
            self.notify(str(exc), title="Not sent", severity="error", timeout=10)
            return
        if self._fork_at is not None and not await self._open_fork():
            prompt.restore(text)
            return
        model = self.app.model
        question = self.conversation.add(ChatMessage("user", text))
        answer = self.conversation.add(
            ChatMessage("assistant", "", model=model, status=MessageStatus.STREAMING)
        )
        journal = self._begin_journal(text, model)
        if journal is not None:
            question.id, answer.id = journal.question_id, journal.reply_id
        log = self.query_one(ChatLog)
        view = AnswerMessage(model)
        await log.mount_all([UserMessage(text), view])
        await self._mark_context(context)
        log.follow()
        status = self.query_one(StatusBar)
        status.estimate, status.context = None, ""
        self.post_message(ResponseStarted(model))
        self.app.remember_model_use(model)
        self._stream(question, answer, view, journal, max_tokens, messages=context.messages)

    def _journal(self, model: str) -> TurnJournal | None:
        """A journal for a turn of this conversation; None without a history."""
        store = self.app.store
        if store is None:
            return None
        return TurnJournal(
            store,
            conversation_id=self.conversation_id,
            model=model,
            system_prompt=self.conversation.system_prompt,
        )

    def _begin_journal(self, text: str, model: str) -> TurnJournal | None:
        """Commit the question (and, on a first question, the conversation) before any network
        I/O. Without a history, or when it cannot be written, the chat goes on unsaved."""
        journal = self._journal(model)
        if journal is None:
            return None
        try:
            new = self.conversation_id is None
            self.conversation_id = journal.begin(text)
        except StoreError as exc:
            self.app.history_failed(exc)
            return None
        own = self.conversation.temperature, self.conversation.max_tokens
        if new and own != (None, None):
            self._save_settings()  # chosen before its first question
        return journal

    def _save_end(
        self, journal: TurnJournal | None, answer: ChatMessage, exc: BaseException | None = None
    ) -> None:
        """Write how the turn ended (one short transaction or two): the payment's outcome when
        the router never took it, and the answer's status, text, tokens and error."""
        if exc is not None:
            self.app.ledger.failed(answer.payment, exc, accepted=answer.accepted)
        if journal is None:
            return
        try:
            journal.finish(
                answer.status.value,
                usage=answer.usage,
                error=answer.error,
                partial_text=answer.content,
            )
        except StoreError as error:
            # The answer stays `streaming` on disk and is marked interrupted at the next start.
            self.app.history_failed(error)

    @work(exclusive=True, group="turn", exit_on_error=False)
    async def _stream(
        self,
        question: ChatMessage,
        answer: ChatMessage,
        view: AnswerMessage,
        journal: TurnJournal | None,
        max_tokens: int,
        resend: Resend | None = None,
        *,
        messages: Sequence[Mapping[str, str]] | None = None,
    ) -> None:
        status = self.query_one(StatusBar)
        stats = self._stats = TurnStats()
        status.state = ChatState.PAYING
        status.tokens = ""
        self._ticker = self.set_interval(STATUS_INTERVAL, self._show_progress)
        sink = _ViewSink(view, status, lambda: self._show_money(answer))
        settings = TurnSettings(
            model=answer.model,
            max_tokens=max_tokens,
            temperature=self.temperature,
        )
        sent = self.conversation.history() if messages is None else messages
        model_info = self.app.model_info(answer.model)

        async def confirm(quote: Quote) -> bool:
            # The router's exact amount, shown before anything is signed.
            status.tokens = f"asks {format_usd(quote.amount_usd)}"
            if model_info is not None:
                self.app.price_guide.learn(model_info, sent, max_tokens, quote.amount_usd)
            return await self.app.confirm_payment(quote, answer.model)

        previous_gc_thresholds = gc.get_threshold()
        gc.set_threshold(*STREAMING_GC_THRESHOLDS)
        try:
            await run_turn(
                self.app.client,
                self.conversation,
                answer,
                settings,
                sink,
                stats,
                self.app.ledger,
                journal,
                confirm,
                resend,
                messages,
            )
        except asyncio.CancelledError as exc:
            answer.status = MessageStatus.STOPPED
            self._save_end(journal, answer, exc)
            await self._end_turn(view, answer, stats)
            if not answer.content:
                self.query_one(PromptInput).restore(question.content)
            status.state = ChatState.STOPPED
            self.post_message(ResponseStopped(answer))
            raise
        except (RouterError, PaymentRefused, StoreError) as exc:
            shorter = None
            if isinstance(exc, StoreError):
                # Only the payment's record can fail this way: the payment is not sent unrecorded.
                message = f"The payment could not be recorded, so it was not sent: {exc}"
            elif isinstance(exc, PaymentRefused):
                message = self.app.ledger.explain(exc)
                shorter = shorter_max_tokens(exc, model_info, sent, max_tokens)
            else:
                message = exc.message
            answer.status = MessageStatus.FAILED
            answer.error = message
            question.status = MessageStatus.FAILED
            self._save_end(journal, answer, exc)
            await self._end_turn(view, answer, stats)
            declined = isinstance(exc, PaymentDeclined)  # the user's choice, not an error
            await view.show_error(message, neutral=declined)
            self.query_one(PromptInput).restore(question.content)
            status.state = ChatState.IDLE if declined else ChatState.ERROR
            self.post_message(ResponseFailed(question.content, message, answer))
            if not answer.content and not isinstance(
                exc, PaymentRejected | PaymentRefused | StoreError
            ):
                # An answer lost before any of it came: its payment may be sent again, as it is.
                await self._offer_resend(question, answer, view)
            if shorter is not None:
                self._offer_shorter(question.content, shorter, max_tokens)
            elif not declined:
                # The whole story is in the block under the turn; the toast only points at it.
                self.notify(_first_sentence(message), title="The answer failed", severity="error")
        except Exception as exc:
            # Whatever else broke the turn, the answer is not left `streaming` on disk.
            answer.status = MessageStatus.FAILED
            answer.error = f"The answer broke off: {type(exc).__name__}"
            self._save_end(journal, answer, exc)
            raise
        else:
            self._save_end(journal, answer)
            await self._end_turn(view, answer, stats)
            status.state = ChatState.IDLE
            self.post_message(ResponseComplete(answer))
        finally:
            gc.set_threshold(*previous_gc_thresholds)

    async def _end_turn(self, view: AnswerMessage, answer: ChatMessage, stats: TurnStats) -> None:
        if self._ticker is not None:
            self._ticker.stop()
            self._ticker = None
        await view.body.finish()
        view.set_footer(answer_footer(answer, stats, self.app.model_info(answer.model)))
        status = self.query_one(StatusBar)
        # The rate is for watching a stream; once it ends the counts say what was used.
        if answer.usage is not None:
            usage = answer.usage
            status.tokens = f"{usage.prompt_tokens} in · {usage.completion_tokens} out tok"
        else:
            status.tokens = f"~{stats.output_tokens} out tok" if stats.output_tokens else ""
        if not answer.content:
            view.body.display = False
        self._show_money(answer)

    def refresh_money_lines(self) -> None:
        """The money line of each answer whose refund the chain has shown since: "refunded $X
        · net $Y" (as seen on chain)."""
        store = self.app.store
        if store is None or self.conversation_id is None:
            return
        try:
            saved = {m.id: m for m in store.messages(self.conversation_id)}
        except StoreError:
            return
        shown = self.query_one(ChatLog).messages()
        messages = self.conversation.messages
        offset = len(messages) - len(shown)
        for index, widget in enumerate(shown):
            message = messages[offset + index] if offset + index >= 0 else None
            stored = saved.get(message.id) if message is not None and message.id else None
            refunded = stored is not None and stored.payment and stored.payment.refund
            if isinstance(widget, AnswerMessage) and stored is not None and refunded:
                widget.set_footer(stored_footer(stored, self.app.model_info(stored.model)))

    def _show_money(self, answer: ChatMessage) -> None:
        """The last charge and the session's spend, counting only payments the router took."""
        status = self.query_one(StatusBar)
        if answer.accepted:
            status.last_charge = answer.charged_usd
        status.session_spend = self.app.ledger.session_usd()

    def _show_progress(self) -> None:
        stats = self._stats
        if stats is None or stats.first_text_at is None:
            return  # until text comes, the bar says what is paid: "asks $X", "paying $X"
        rate = stats.tokens_per_second()
        # "~" until the router's own count replaces the estimate.
        tokens = f"{'' if stats.exact else '~'}{stats.output_tokens} tok"
        self.query_one(StatusBar).tokens = f"{tokens} · {rate:.0f} tok/s" if rate else tokens

    def _offer_shorter(self, text: str, fitting: int, max_tokens: int) -> None:
        """Offer to send the refused question again with a `max_tokens` that fits the limit."""

        async def answered(yes: bool | None) -> None:
            if yes:
                self.query_one(PromptInput).clear()
                await self.send(text, max_tokens=fitting)

        self.app.push_screen(
            ConfirmDialog(
                "Send a shorter answer instead?",
                f"The router charges up front for max_tokens ({max_tokens}). With max_tokens "
                f"{fitting} this question fits the limit. Send it with {fitting} for this "
                "turn only?",
                yes=f"Send with {fitting}",
            ),
            answered,
        )

    # -- the prompt in the user's editor -------------------------------------------------

    async def action_compose_in_editor(self) -> None:
        """Open the prompt's text in the user's editor, the app suspended meanwhile; the
        edited text comes back into the prompt."""
        prompt = self.query_one(PromptInput)
        text = prompt.full_text
        env = self.app.env
        try:
            try:
                with self.app.suspend():
                    edited = edit_in_editor(text, env)
            except SuspendNotSupported:
                # No terminal to hand over (a headless run): only an editor that needs none.
                edited = await asyncio.to_thread(edit_in_editor, text, env)
        except EditorError as exc:
            self.notify(str(exc), title="Editor", severity="error")
            return
        prompt.show_text(edited)
        prompt.focus()

    # -- the message cursor, and forks -------------------------------------------------

    def _selected(self) -> tuple[int, ChatMessage] | None:
        return self.cursor.message(self.query_one(ChatLog).messages(), self.conversation.messages)

    def action_select_message(self, step: int) -> None:
        """Select the previous (-1) or next (1) message of the log."""
        selected = self.cursor.move(self.query_one(ChatLog).messages(), step)
        self.query_one(PromptInput).cursor_keys = CURSOR_KEYS if selected else frozenset()
        self.refresh_bindings()

    def action_back_to_prompt(self) -> None:
        """Leave the selected message, or the fork being edited, for the prompt."""
        if self.cursor.active:
            self._leave_cursor()
            return
        if self._fork_at is not None:
            self._fork_at = None
            self.query_one(PromptInput).clear()
            self.notify("Not forked: the conversation goes on as it was.")
            self.show_estimate()
            self.refresh_bindings()

    def _leave_cursor(self) -> None:
        self.cursor.clear()
        self.query_one(PromptInput).cursor_keys = frozenset()
        self.refresh_bindings()

    async def action_copy_message(self) -> None:
        """Copy the selected message, its Markdown as written."""
        selected = self._selected()
        if selected is not None:
            what = "the question" if selected[1].role == "user" else "the answer"
            await self.app.copy_message(selected[1].content, what)

    async def action_copy_code(self) -> None:
        """Copy the selected message's code block; pressed again, the next one."""
        selected = self._selected()
        if selected is None:
            return
        blocks = code_blocks(terminal_text(selected[1].content))
        if not blocks:
            self.notify("This message has no code block.", severity="warning")
            return
        index = self.cursor.code_index % len(blocks)
        self.cursor.code_index = index + 1
        where = f"code block {index + 1} of {len(blocks)}" if len(blocks) > 1 else "its code block"
        await self.app.copy_message(blocks[index], where)

    def action_fold_thinking(self) -> None:
        """Fold the selected answer's reasoning away, or unfold it."""
        if isinstance(self.cursor.widget, AnswerMessage):
            self.cursor.widget.thinking.fold()

    def action_edit_message(self) -> None:
        """Put the selected question in the prompt: sent, it goes to a fork of the
        conversation that keeps what came before it; this one stays as it is."""
        self._start_fork("Edit the question")

    def action_regenerate(self) -> None:
        """Ask the selected answer's question again, in a fork that keeps what came before
        it (with the model picked now): its price shows in the prompt before it is sent."""
        self._start_fork("Regenerate")

    def _start_fork(self, what: str) -> None:
        selected = self._selected()
        if selected is None:
            return
        index, message = selected
        if message.role == "assistant":
            questions = [i for i in range(index) if self.conversation.messages[i].role == "user"]
            if not questions:
                return
            index = questions[-1]
        question = self.conversation.messages[index]
        self._leave_cursor()
        self._fork_at = index
        prompt = self.query_one(PromptInput)
        prompt.restore(question.content)
        self.notify(
            f"{what}: Enter sends it to a new conversation, a fork of this one up to that "
            "question (this one stays as it is). Esc leaves it.",
            title="Fork",
            timeout=8,
        )
        self.refresh_bindings()

    async def _open_fork(self) -> bool:
        """Make the fork the prompt's text is sent to, and open it; False when it cannot be
        made (said)."""
        keep, self._fork_at = self._fork_at or 0, None
        store = self.app.store
        if store is None or self.conversation_id is None:
            self.notify("A fork needs the history, which is not open.", severity="error")
            return False
        kept = self.conversation.messages[:keep]
        try:
            if kept and kept[-1].id is not None:
                fork_id = store.fork(self.conversation_id, kept[-1].id)
            else:
                info = store.conversation(self.conversation_id)
                title = f"{info.title if info else 'conversation'} (fork)"
                fork_id = store.new_conversation(
                    self.app.model, self.conversation.system_prompt, title
                )
        except StoreError as exc:
            self.app.history_failed(exc)
            return False
        return await self.open_conversation(fork_id)

    # -- a lost answer, asked for again with its own payment ----------------------------

    async def _offer_resend(
        self, question: ChatMessage, answer: ChatMessage, view: AnswerMessage
    ) -> None:
        """Under a lost answer whose payment can be sent again: ctrl+r, and how long."""
        resend = self.app.ledger.resend_of(answer.payment)
        if resend is None:
            return
        self._lost = _LostAnswer(resend, question, answer, view)
        await view.mount(RetryHint(resend.payment.valid_before))
        self.refresh_bindings()

    @on(RetryHint.Expired)
    def _resend_expired(self) -> None:
        self._forget_lost()

    def _forget_lost(self) -> None:
        if self._lost is not None:
            self._lost = None
            self.refresh_bindings()

    async def action_retry(self) -> None:
        """Ask again for the lost answer, with the payment signed for it: the same request and
        the same signed header, so it is charged once at most. Nothing new is signed."""
        lost = self._lost
        if lost is None or self.streaming:
            return
        self._lost = None
        self.refresh_bindings()
        if lost.resend.seconds_left() < RESEND_MARGIN:
            self.notify("Its payment has expired: asking again is a new payment.")
            return
        prompt = self.query_one(PromptInput)
        if prompt.full_text == lost.question.content:
            prompt.clear()  # it was put back there when the answer failed
        lost.question.status = MessageStatus.COMPLETE
        answer = lost.answer
        answer.status = MessageStatus.STREAMING
        answer.content, answer.error = "", ""
        answer.accepted, answer.receipt, answer.usage = False, None, None
        # A fresh answer in place of the failed one (its error and hint go with it).
        log = self.query_one(ChatLog)
        view = AnswerMessage(answer.model)
        await log.mount(view, after=lost.view)
        await lost.view.remove()
        log.follow()
        journal = self._resume_journal(lost.resend.message_id, answer.model)
        self.query_one(StatusBar).estimate = None
        self.post_message(ResponseStarted(answer.model))
        max_tokens = lost.resend.body.get("max_tokens")
        self._stream(
            lost.question,
            answer,
            view,
            journal,
            max_tokens if isinstance(max_tokens, int) else self.app.max_tokens,
            lost.resend,
        )

    def _resume_journal(self, message_id: int, model: str) -> TurnJournal | None:
        """The lost answer's row, `streaming` again for the resend; None without a history."""
        journal = self._journal(model)
        if journal is None:
            return None
        try:
            journal.resume(message_id)
        except StoreError as exc:
            self.app.history_failed(exc)
            return None
        return journal

    async def _offer_resend_of_saved(self, messages: Sequence[StoredMessage]) -> None:
        """A reopened conversation whose last answer was lost, its payment still valid: the
        same ctrl+r as right after the loss."""
        store = self.app.store
        lost = last_unanswered(messages)
        if store is None or lost is None or lost.payment is None:
            return
        resend = kept_resend(store, lost.payment)
        answers = [m for m in self.conversation.messages if m.role == "assistant"]
        questions = [m for m in self.conversation.messages if m.role == "user"]
        views = self.query_one(ChatLog).query(AnswerMessage)
        if resend is None or not answers or not questions or not views:
            return
        answer = answers[-1]
        answer.payment = resend.payment
        self._lost = _LostAnswer(resend, questions[-1], answer, views.last())
        await views.last().mount(RetryHint(resend.payment.valid_before))
        self.refresh_bindings()

    # -- actions -------------------------------------------------------------------------

    def action_stop(self) -> None:
        """Stop the answer being streamed; what arrived stays."""
        self.workers.cancel_group(self, "turn")

    async def action_new_chat(self) -> None:
        """Start over with an empty conversation (the model stays)."""
        self.action_stop()
        self._forget_lost()
        self.conversation = Conversation(system_prompt=self.app.settings.system_prompt)
        # Its row in the history is made with its first question.
        self.conversation_id = None
        await self.query_one(ChatLog).remove_children()
        self._reset_status()

    async def open_conversation(self, conversation_id: int) -> bool:
        """Show a saved conversation and go on with it: the next turn sends its history, the
        status bar counts its spend. False when it is not in the history (any more)."""
        store = self.app.store
        if store is None:
            return False
        try:
            info = store.conversation(conversation_id)
            messages = store.messages(conversation_id) if info is not None else []
        except StoreError as exc:
            self.app.history_failed(exc)
            return False
        if info is None:
            return False
        self.action_stop()
        self._forget_lost()
        self.conversation = conversation_from_store(info, messages)
        self.conversation.temperature, self.conversation.max_tokens = (
            info.temperature,
            info.max_tokens,
        )
        self.conversation_id = info.id
        await self.query_one(ChatLog).show_history(shown_messages(messages, self.app.models))
        await self._offer_resend_of_saved(messages)
        if info.model and info.model != self.app.model:
            # Going on with a conversation keeps its model, as `ask --continue` does.
            self.app.model = info.model
            self.query_one(StatusBar).model = info.model
            self.post_message(ModelChanged(info.model))
        with suppress(PromptTooLong):
            # Where the next turn's history starts, if it cannot all be sent.
            context = self.choose_context("", self.app.max_tokens)
            await self._mark_context(context, sending=False)
        self._reset_status()
        return True

    def _reset_status(self) -> None:
        status = self.query_one(StatusBar)
        status.state = ChatState.IDLE
        status.tokens = ""
        status.last_charge = None
        status.session_spend = self.app.ledger.session_usd()
        self._show_settings()
        self.query_one(PromptInput).focus()


# The actions on the selected message, and their keys (not text while one is selected).
_ON_SELECTED = frozenset(
    {"copy_message", "copy_code", "edit_message", "regenerate", "fold_thinking"}
)
CURSOR_KEYS = frozenset({"c", "b", "e", "r", "t"})


@dataclass(frozen=True, slots=True)
class _LostAnswer:
    """A turn whose paid answer was lost, and what sending it again takes."""

    resend: Resend
    question: ChatMessage
    answer: ChatMessage
    view: AnswerMessage


class _ViewSink:
    """Draws a turn: the answer's deltas go to its Markdown, payment steps to the status bar."""

    def __init__(
        self, view: AnswerMessage, status: StatusBar, show_money: Callable[[], None]
    ) -> None:
        self.view = view
        self.status = status
        self.text = view.body.feed
        self._show_money = show_money

    def paying(self, payment: SignedPayment) -> None:
        self.status.state = ChatState.PAYING
        self.status.tokens = f"paying {format_usd(payment.amount_usd)}"

    def paid(self) -> None:
        self.status.state = ChatState.STREAMING
        self._show_money()

    def reasoning(self, text: str) -> None:
        self.view.add_reasoning(text)


def _first_sentence(message: str) -> str:
    """The first sentence of `message`: enough for a notification."""
    head, dot, rest = message.partition(". ")
    return f"{head}." if dot and rest else message


def answer_footer(answer: ChatMessage, stats: TurnStats, model: ModelInfo | None = None) -> str:
    """The dim line under an answer: tokens in/out, then its money line (what was charged,
    what the tokens cost at `model`'s prices, the refund to expect, network, transaction)."""
    parts: list[str] = []
    if answer.status is MessageStatus.STOPPED:
        parts.append("stopped")
    if answer.usage is not None:
        parts.append(
            f"{answer.usage.prompt_tokens} in / {answer.usage.completion_tokens} out tokens"
        )
    elif stats.output_tokens:
        parts.append(f"~{stats.output_tokens} out tokens")
    payment = answer.payment
    if payment is None:
        parts.append("not charged")
    elif answer.accepted:
        parts.extend(Charge.of(payment, answer.receipt, answer.usage, model).parts())
    if answer.cut_at is not None:
        parts.append(f"cut at max_tokens {answer.cut_at} · ctrl+p Continue the answer")
    if answer.status is MessageStatus.STOPPED and payment is not None:
        if answer.accepted:
            parts.append("sending it again is a new charge")
        else:
            parts.append(payment_note(payment, accepted=False).strip())
    return " · ".join(parts)
