"""Encryption at rest for tokens and other secrets (Fernet: AES-128-CBC + HMAC-SHA256).

Every OAuth token the store keeps is encrypted with one key taken from the environment
(``QB_FERNET_KEY``), so a copy of the database alone (a backup, a dump attached to a ticket)
does not let anyone call QuickBooks on a tenant's behalf. The key never goes into the database.

Generate a key with ``qb-pipelines keys generate`` (or :func:`generate_key`) and keep it in the
deployment's secret store; losing it means every tenant must reconnect, because stored tokens can
no longer be decrypted.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from cryptography.fernet import Fernet, InvalidToken

from qb_pipelines.config import SettingsError

#: The environment variable that holds the Fernet key.
KEY_ENV_VAR = "QB_FERNET_KEY"


class KeyConfigError(SettingsError):
    """Raised when the encryption key is missing or malformed."""


class MissingKeyError(KeyConfigError):
    """``QB_FERNET_KEY`` is not set: the store cannot encrypt or decrypt tokens."""


class DecryptionError(ValueError):
    """A stored secret cannot be decrypted with the current key (wrong or rotated key)."""


def generate_key() -> str:
    """A fresh random Fernet key (URL-safe base64 text), suitable for ``QB_FERNET_KEY``."""
    return Fernet.generate_key().decode("ascii")


def load_key(env: Mapping[str, str] | None = None) -> bytes:
    """Read the Fernet key from ``QB_FERNET_KEY``.

    Args:
        env: where to look (``os.environ`` by default; tests pass a dict).

    Returns:
        The key as bytes, validated.

    Raises:
        MissingKeyError: when the variable is unset or empty, saying how to create one.
        KeyConfigError: when the value is not a valid Fernet key.
    """
    env = os.environ if env is None else env
    value = (env.get(KEY_ENV_VAR) or "").strip()
    if not value:
        raise MissingKeyError(
            f"{KEY_ENV_VAR} is not set: the connections store encrypts OAuth tokens with it. "
            f"Generate one with `qb-pipelines keys generate` and export {KEY_ENV_VAR}=<key> "
            "(keep it secret and keep it: without it stored connections must be reconnected)."
        )
    key = value.encode("ascii", errors="replace")
    try:
        Fernet(key)
    except (ValueError, TypeError) as exc:
        raise KeyConfigError(
            f"{KEY_ENV_VAR} is not a valid Fernet key (32 url-safe base64-encoded bytes). "
            "Generate one with `qb-pipelines keys generate`."
        ) from exc
    return key


class SecretBox:
    """Encrypts and decrypts short secrets (tokens) with a Fernet key.

    Args:
        key: a Fernet key, as bytes or text (for example from :func:`load_key`).
    """

    def __init__(self, key: bytes | str) -> None:
        raw = key.encode("ascii") if isinstance(key, str) else key
        try:
            self._fernet = Fernet(raw)
        except (ValueError, TypeError) as exc:
            raise KeyConfigError(
                f"Invalid Fernet key in {KEY_ENV_VAR} (32 url-safe base64-encoded bytes expected). "
                "Generate one with `qb-pipelines keys generate`."
            ) from exc

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SecretBox:
        """A box keyed by ``QB_FERNET_KEY`` (see :func:`load_key`)."""
        return cls(load_key(env))

    def encrypt(self, plaintext: str) -> str:
        """Encrypt text; the result is ASCII, safe for any text column."""
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        """Decrypt what :meth:`encrypt` produced.

        Raises:
            DecryptionError: when the value was encrypted with another key or was altered.
        """
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            raise DecryptionError(
                f"A stored secret cannot be decrypted with the current {KEY_ENV_VAR}: the key changed. "
                "Restore the previous key, or reconnect the affected QuickBooks companies."
            ) from exc

    def __repr__(self) -> str:
        # Never show the key.
        return "SecretBox(<key hidden>)"
