"""Batch systems: what jobs ask for, PBS job states, connection budgets.

Takes the config; gives each job's resources and queue options, and the per-server
connection caps the workflow's scheduler enforces.
"""
