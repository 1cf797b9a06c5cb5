"""claim: clinically guided myocardial scar synthesis for LGE cardiac MRI."""

from __future__ import annotations

__version__ = "0.1.0"

from claim.errors import ClaimError

__all__ = ["ClaimError", "__version__"]
