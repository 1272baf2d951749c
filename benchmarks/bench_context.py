"""Benchmark: choosing what of a long conversation a turn sends; prints figures, asserts nothing.

    python benchmarks/bench_context.py [--messages 2000] [--chars 430] [--rounds 200]

The chat chooses the context on every debounced keystroke (the price shown while typing uses
exactly the messages that will be sent), so it must cost next to nothing. A `Conversation` of
`--messages` messages (questions and answers in turn, about `--chars` characters each) is
built, then timed, as `ChatScreen.choose_context` does it: its exchanges as messages (made
once, then kept while the conversation does not change, as while the user types), then
`choose_context` for a 200K-token model (everything fits but X-Router's 100 messages) and a
32K-token one with long messages (the model's context decides). The first round, which makes
the messages, is shown apart. The figures are the median and the 99th percentile of `--rounds`
rounds; the goal is at most 5 ms at 2,000 messages.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# Runs from a checkout too, without the package installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xrouter_tui.chat import ChatMessage, Conversation
from xrouter_tui.context import choose_context

GOAL_MS = 5.0


def conversation(messages: int, chars: int) -> Conversation:
    chat = Conversation(system_prompt="Answer briefly and precisely.")
    for index in range(messages):
        role = "user" if index % 2 == 0 else "assistant"
        text = f"{role} message {index}: " + "lorem ipsum dolor sit amet " * (chars // 27)
        chat.add(ChatMessage(role, text[:chars]))
    return chat


def choose(chat: Conversation, context_length: int) -> int:
    context = choose_context(
        chat.system_prompt,
        chat.earlier(),
        "what about the next one?",
        context_length=context_length,
        max_tokens=1024,
    )
    return len(context.messages)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--chars", type=int, default=430)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    cases = (
        (f"200K-token model, ~{args.chars}-character messages", 200_000, args.chars),
        (f"32K-token model, ~{args.chars * 8}-character messages", 32_768, args.chars * 8),
    )
    print(f"A conversation of {args.messages:,} messages.")
    for label, context_length, chars in cases:
        chat = conversation(args.messages, chars)
        started = time.perf_counter()
        choose(chat, context_length)
        first = (time.perf_counter() - started) * 1000
        print(f"  {label}: the first round, making the messages: {first:.2f} ms")
        times = []
        sent = 0
        for _ in range(args.rounds):
            started = time.perf_counter()
            sent = choose(chat, context_length)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
        print(
            f"  {label}: {sent} messages sent; choosing took median "
            f"{statistics.median(times):.2f} ms, p99 {p99:.2f} ms (goal <= {GOAL_MS:g} ms)"
        )


if __name__ == "__main__":
    main()
