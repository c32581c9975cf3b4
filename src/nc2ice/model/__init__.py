"""The data every stage shares: manifests, columnar references, codecs, the scan index.

No stage of its own: the manifest a scan writes and the commit reads, the chunk references
in columns, reading values back from references, and the codecs Zarr readers need.
"""
