"""The engine every run over files shares: items in, tasks run by a backend, one record per item,
a journal to resume from, writers by name (``kifaru.outputs``)."""
