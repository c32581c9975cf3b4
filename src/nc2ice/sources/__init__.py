"""Which files a dataset has, and what changed since the last run.

Takes a dataset's source entries (URLs, globs, S3 listings, THREDDS catalogs); gives
``sources.tsv`` (every file, its version and the entry that lists it) and stable batches of
files (``batches/<batch>.tsv``), rewritten only where a file is new, changed or gone.
"""
