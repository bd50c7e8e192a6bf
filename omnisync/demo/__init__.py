"""The demo: a sample customer database, the example config pointed at a local emulator."""
