"""The report tests reuse the smoke study of tests/experiment (one run per session)."""

from tests.experiment.conftest import smoke_study  # noqa: F401
