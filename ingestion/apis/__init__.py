"""Bank-data API ingestion (Plaid, RazorpayX): credentials from the environment, clients, cursors, mapping."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loanrisk.errors import ConfigError

_LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class ApiSettings(BaseSettings):
    """API credentials and endpoints, read from PLAID_* and RAZORPAYX_* environment variables.

    Kept here until they move into ``loanrisk.settings`` (as an ``apis`` section); secrets never print.
    """

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    plaid_client_id: SecretStr | None = None
    plaid_secret: SecretStr | None = None
    plaid_base_url: str = "https://sandbox.plaid.com"
    razorpayx_key_id: SecretStr | None = None
    razorpayx_key_secret: SecretStr | None = None
    razorpayx_base_url: str = "https://api.razorpay.com"
    razorpayx_account_number: str | None = None

    @field_validator("plaid_base_url", "razorpayx_base_url")
    @classmethod
    def _https_unless_loopback(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://sandbox.plaid.com")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials; use the *_KEY_* / *_SECRET variables")
        if parts.scheme == "http" and parts.hostname not in _LOOPBACK_HOSTS:
            raise ValueError("must use https:// (plain http is allowed only for 127.0.0.1/localhost)")
        return value.rstrip("/")

    @classmethod
    def load(cls) -> ApiSettings:
        """Read the environment; an invalid value raises ConfigError naming the variable (one line)."""
        try:
            return cls()
        except ValidationError as exc:
            err = exc.errors()[0]
            name = str(err["loc"][0]).upper() if err["loc"] else "?"
            raise ConfigError(f"invalid {name}: {err['msg'].removeprefix('Value error, ')}") from None

    def plaid_credentials(self) -> tuple[str, str]:
        """(client_id, secret), or ConfigError naming the missing variables."""
        _require(("PLAID_CLIENT_ID", self.plaid_client_id), ("PLAID_SECRET", self.plaid_secret))
        assert self.plaid_client_id is not None and self.plaid_secret is not None
        return self.plaid_client_id.get_secret_value(), self.plaid_secret.get_secret_value()

    def razorpayx_credentials(self) -> tuple[str, str]:
        """(key_id, key_secret), or ConfigError naming the missing variables."""
        _require(("RAZORPAYX_KEY_ID", self.razorpayx_key_id), ("RAZORPAYX_KEY_SECRET", self.razorpayx_key_secret))
        assert self.razorpayx_key_id is not None and self.razorpayx_key_secret is not None
        return self.razorpayx_key_id.get_secret_value(), self.razorpayx_key_secret.get_secret_value()


def _require(*pairs: tuple[str, SecretStr | None]) -> None:
    missing = [name for name, value in pairs if value is None or not value.get_secret_value()]
    if missing:
        raise ConfigError(f"missing credentials: set {' and '.join(missing)} in the environment")


__all__ = ["ApiSettings"]
