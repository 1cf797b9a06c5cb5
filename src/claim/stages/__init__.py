"""Stages: folder-in, folder-out steps built on the domain packages (aha, smile, generator, ...).

Domain packages never import from here; the CLI, the study and the demo do.
"""
