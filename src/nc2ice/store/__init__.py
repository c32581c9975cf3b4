"""The plan into Icechunk, and the store opened as readers open it.

Takes a plan; gives a snapshot on a branch of its own (``commit.json``, with what the
validation must compare), and, once validated, ``main`` moved to it (``published.json``).
A run removes only what it created.
"""
