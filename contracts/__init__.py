"""Event and feature contracts: the one definition every engine's schema is derived from."""
