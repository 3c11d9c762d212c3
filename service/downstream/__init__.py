"""Clients of downstream services (ACS, Entra OBO). They receive the app's `ClientSession`,
never create one, put one deadline over every attempt (retry.py) and translate foreign
exceptions into the broker's error tree where they enter."""

from .cache import SingleFlightCache
from .retry import DEFAULT_POLICY, NO_RETRY, DeadlineExceeded, RetryPolicy, Transient, call_with_deadline

__all__ = ["DEFAULT_POLICY", "NO_RETRY", "DeadlineExceeded", "RetryPolicy", "SingleFlightCache",
           "Transient", "call_with_deadline"]
