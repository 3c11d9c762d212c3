"""Validation of inbound tokens: strict JWS parsing, the JWKS cache and the Entra validator.

Framework-free (no aiohttp.web): callers translate the TokenValidationError subclasses.
"""

from service.validation.entra import EntraPrincipal, EntraValidator
from service.validation.jwks import CachedKey, JwksCache

__all__ = ["CachedKey", "EntraPrincipal", "EntraValidator", "JwksCache"]
