"""Benchmark: searching the history; prints figures, asserts nothing.

    python benchmarks/bench_search.py [--conversations 2000] [--messages 10] [--runs 20]

A history in the schema before full-word search (3) is filled with `--conversations`
conversations of `--messages` messages of about 430 characters of English-like text each; then
it is opened, which migrates it (the search indexes are made anew from every row: timed), and
`Store.conversations(search=...)` is timed for searches a user makes: a rare word, a common
one, two words that occur in different messages, a stem, a prefix being typed, a word found
nowhere, each with the conversations screen's limit (500). The median of `--runs` runs is shown.
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Runs from a checkout too, without the package installed.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from xrouter_tui.history import store as store_module
from xrouter_tui.history.store import Store

SCHEMA_BEFORE = 3
VOCABULARY = (
    "the a of to and in is it that for on with as this be are by or at from can your you we an "
    "payment router model answer question token price network wallet signature transfer "
    "conversation history search message stream request receipt budget ledger amount chain "
    "python function class module import return value error exception test terminal screen "
    "ship ships shipping shipped harbour cargo sail river mountain forest garden kitchen "
    "recipe bread butter coffee tea music guitar piano poem story novel chapter letter"
)
WORDS = VOCABULARY.split()
RARE = "zanzibar"
SEARCHES = {
    "a rare word": RARE,
    "a common word": "payment",
    "two words, different messages": "guitar harbour",
    "a stem (ship → ships, shipping)": "ship",
    "a prefix being typed": "conv",
    "three common words": "the model answer",
    "a word found nowhere": "quetzalcoatl",
    "one letter typed": "s",
    "two letters typed": "st",
}


# And a long tail of rarer words, as real text has (thousands of terms, most seldom used).
SYLLABLES = [
    "ba",
    "ce",
    "di",
    "fo",
    "gu",
    "ha",
    "ke",
    "li",
    "mo",
    "nu",
    "pa",
    "re",
    "si",
    "to",
    "vu",
    "wa",
    "xe",
    "yo",
    "zu",
    "ran",
    "tel",
    "mis",
    "con",
    "str",
]


def vocabulary(rng: random.Random, size: int = 20_000) -> list[str]:
    tail = {"".join(rng.choices(SYLLABLES, k=rng.randint(2, 4))) for _ in range(size)}
    return sorted(tail)


def text(rng: random.Random, tail: list[str], chars: int = 430) -> str:
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < chars:
        words.append(rng.choice(WORDS) if rng.random() < 0.7 else rng.choice(tail))
    return " ".join(words).capitalize() + "."


def fill(path: Path, conversations: int, messages: int) -> None:
    """A history at schema 3, as the version before this one left it."""
    rng = random.Random(17)
    tail = vocabulary(rng)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for statements in store_module._MIGRATIONS[:SCHEMA_BEFORE]:
        for statement in statements:
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_BEFORE}")
    for number in range(conversations):
        cursor = db.execute(
            "INSERT INTO conversations (title, model, system_prompt, seq) VALUES (?, 'm', ?, ?)",
            (text(rng, tail, 40), "Be brief." if number % 3 else "", number + 1),
        )
        for index in range(messages):
            body = text(rng, tail)
            if number % 500 == 7 and index == messages - 1:
                body += f" {RARE}"
            db.execute(
                "INSERT INTO messages (conversation_id, role, content, status) "
                "VALUES (?, ?, ?, 'complete')",
                (cursor.lastrowid, "user" if index % 2 == 0 else "assistant", body),
            )
    db.execute("COMMIT")
    db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--messages", type=int, default=10)
    parser.add_argument("--runs", type=int, default=20)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.sqlite3"
        fill(path, options.conversations, options.messages)
        total = options.conversations * options.messages
        started = time.perf_counter()
        store = Store.open(path)
        migrated = time.perf_counter() - started
        print(
            f"{options.conversations:,} conversations × {options.messages} messages "
            f"({total:,} messages, {path.stat().st_size / 2**20:.1f} MiB)"
        )
        print(f"  migration {SCHEMA_BEFORE} → {store.schema_version} (re-index): {migrated:.2f} s")
        with store:
            for label, search in SEARCHES.items():
                times, found = [], 0
                for _ in range(options.runs):
                    started = time.perf_counter()
                    found = len(store.conversations(search=search, limit=500))
                    times.append(time.perf_counter() - started)
                median = statistics.median(times) * 1000
                print(f"  {label:34} {search!r:20} {found:5} found  {median:7.1f} ms")
            started = time.perf_counter()
            listed = len(store.conversations(limit=500))
            print(
                f"  {'the list, no search':34} {'':20} {listed:5} shown  "
                f"{(time.perf_counter() - started) * 1000:7.1f} ms"
            )


if __name__ == "__main__":
    main()
