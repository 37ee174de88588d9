"""The signing key, JWKS, the issuer and discovery document, and id_tokens (OpenID Connect).

May touch: the ``oauth_rsa_key`` entry of the ``kv`` table; reads users (for an id_token's ``sub``).
"""

from __future__ import annotations

import secrets
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from qb_pipelines.emulator.oauth.common import ACCESS_TOKEN_LIFETIME_S, OAuthRoom


class Keys(OAuthRoom):
    """The RSA key id_tokens are signed with, and what clients verify them by."""

    def _signing_key(self) -> tuple[Any, str]:
        """The RSA key that signs id_tokens, created once and kept in the database."""
        with self._key_lock:
            if self._signing is None:
                stored = self.emu.db.kv_get("oauth_rsa_key")
                if stored:
                    key = serialization.load_pem_private_key(stored["pem"].encode(), password=None)  # type: ignore[index]
                    kid = stored["kid"]  # type: ignore[index]
                else:
                    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
                    pem = key.private_bytes(
                        serialization.Encoding.PEM,
                        serialization.PrivateFormat.PKCS8,
                        serialization.NoEncryption(),
                    ).decode()
                    kid = "r4p5SbL2" + secrets.token_hex(8)
                    self.emu.db.kv_set("oauth_rsa_key", {"pem": pem, "kid": kid})
                self._signing = (key, kid)
            return self._signing

    def jwks(self) -> dict:
        """The JWK set clients verify id_tokens with."""
        key, kid = self._signing_key()
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        return {"keys": [{"kty": "RSA", "e": jwk["e"], "use": "sig", "kid": kid, "alg": "RS256", "n": jwk["n"]}]}

    def issuer(self) -> str:
        return f"{self.emu.base_url}/op/v1"

    def discovery(self) -> dict:
        """The OpenID discovery document (keys per reference §10.1, URLs on this emulator)."""
        base = self.emu.base_url
        return {
            "issuer": self.issuer(),
            "authorization_endpoint": f"{base}/connect/oauth2",
            "token_endpoint": f"{base}/oauth2/v1/tokens/bearer",
            "userinfo_endpoint": f"{base}/v1/openid_connect/userinfo",
            "revocation_endpoint": f"{base}/v2/oauth2/tokens/revoke",
            "jwks_uri": f"{base}/op/v1/jwks",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile", "address", "phone"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "exp", "iat", "iss", "realmid", "sub"],
        }

    def _id_token(self, grant: dict) -> str:
        key, kid = self._signing_key()
        user = self._user(grant["email"]) or {"sub": grant["email"]}
        iat = int(self.emu.clock.timestamp())
        claims = {
            "sub": user["sub"],
            "aud": [grant["client_id"]],
            "realmid": grant["realm"],
            "auth_time": int(grant["auth_time"]),
            "iss": self.issuer(),
            "exp": iat + ACCESS_TOKEN_LIFETIME_S,
            "iat": iat,
        }
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})
