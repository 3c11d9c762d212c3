"""tokenbroker: a backend-for-frontend token-exchange broker for Entra ID and ACS."""

__version__ = "0.1.0"
