"""loan-risk core: settings, errors and logging shared by every room of the platform."""
