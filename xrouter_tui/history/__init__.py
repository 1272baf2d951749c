"""The history: the SQLite store of conversations and payments, the journal that writes a turn
as it happens, and the exports. Below the chat, `ask` and the proxy, which all keep their turns
here."""
