"""One file's layout into a manifest.

Takes a batch of source files; gives one manifest per file (kerchunk v1 references, and
the values small variables load) and the batch's index (``manifests/<batch>.tsv``).
HDF5/netCDF4 and netCDF3 each have a scanner in ``formats``.
"""
