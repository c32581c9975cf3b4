"""Manifests into one dataset plan.

Takes the manifests of a dataset's files; gives a plan for the store (each array's
metadata, its references or values, what must be copied), having ordered the files,
harmonised their encodings, refused differences of meaning and chosen one chunk grid.
"""
