"""The chat screen and its dialogs."""
