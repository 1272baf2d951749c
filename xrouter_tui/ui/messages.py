"""What the chat tells the rest of the app about a turn, the model and the wallet; tests watch
these too."""

from __future__ import annotations

from textual.message import Message

from xrouter_tui.chat import ChatMessage

__all__ = [
    "ModelChanged",
    "ResponseComplete",
    "ResponseFailed",
    "ResponseStarted",
    "ResponseStopped",
    "WalletChanged",
]


class ResponseStarted(Message):
    """A turn began: the question is in the log, the answer is on its way from `model`."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class ResponseComplete(Message):
    """The answer arrived in full."""

    def __init__(self, answer: ChatMessage) -> None:
        super().__init__()
        self.answer = answer


class ResponseStopped(Message):
    """The user stopped the answer; what had arrived stays, with what was paid."""

    def __init__(self, answer: ChatMessage) -> None:
        super().__init__()
        self.answer = answer


class ResponseFailed(Message):
    """The turn failed: `error` says why in plain words; `prompt` went back into the prompt box."""

    def __init__(self, prompt: str, error: str, answer: ChatMessage) -> None:
        super().__init__()
        self.prompt = prompt
        self.error = error
        self.answer = answer


class ModelChanged(Message):
    """The user chose `model` for the turns to come."""

    def __init__(self, model: str) -> None:
        super().__init__()
        self.model = model


class WalletChanged(Message):
    """The chat pays from `address` from now on ('' when it has no wallet). Only the address:
    a message is logged and handed to test hooks, and the key must never travel with it."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address
