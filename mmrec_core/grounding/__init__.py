"""Grounding: which claims of a generated text the catalog or the image supports (`claims.check`)."""

from mmrec_core.grounding.claims import CHECKER_VERSION, Claim, Grounding, check

__all__ = ["CHECKER_VERSION", "Claim", "Grounding", "check"]
