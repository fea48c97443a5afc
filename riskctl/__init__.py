"""riskctl: the one command-line entry point of loan-risk (a thin layer over the packages)."""
