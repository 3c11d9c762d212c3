"""The broker's own tokens: signing keys (`keyring`) and RFC 9068 JWT access tokens (`issuer`)."""

from service.issuing.issuer import MintedToken, TokenIssuer
from service.issuing.keyring import Keyring, SigningKey, rotate_keys

__all__ = ["Keyring", "MintedToken", "SigningKey", "TokenIssuer", "rotate_keys"]
