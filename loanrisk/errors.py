"""Errors that the CLI turns into one clear line (never a stack trace)."""


class LoanRiskError(Exception):
    """Base class: its message is shown to the user as is, and says the fix."""


class ConfigError(LoanRiskError):
    """A setting or configuration file is invalid."""


class StackError(LoanRiskError):
    """A local stack service failed to start, stop or answer."""


class SetupError(LoanRiskError):
    """Setup could not create an environment or fetch an artifact."""
