"""The snapshot against the sources, and the report.

Takes ``commit.json`` and its validation plan; gives each part's verdict, the joined
verdict (``validation.json``) and the report's pages.
"""
