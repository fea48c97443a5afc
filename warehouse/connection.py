"""Opens a snowflake-connector-python connection: the local endpoint by default, a real account when configured."""

from __future__ import annotations

from typing import Any

from loanrisk.settings import Settings


def connect_kwargs(settings: Settings) -> dict[str, Any]:
    """Connection arguments for snowflake.connector.connect (never logged: they hold credentials)."""
    sf = settings.snowflake
    kwargs: dict[str, Any] = {"account": sf.account, "user": sf.user, "role": sf.role, "warehouse": sf.warehouse,
                              "database": sf.database, "schema": sf.schema_name, "login_timeout": 30,
                              "network_timeout": 60}
    if sf.local:
        kwargs.update(host=sf.host, port=sf.port, protocol=sf.protocol, password=sf.password.get_secret_value())
    elif sf.private_key_file:
        kwargs.update(authenticator="SNOWFLAKE_JWT", private_key_file=str(sf.private_key_file))
    else:
        kwargs.update(password=sf.password.get_secret_value())
    return kwargs


def connect(settings: Settings):
    """A live connection to the configured Snowflake endpoint."""
    import snowflake.connector
    return snowflake.connector.connect(**connect_kwargs(settings))
