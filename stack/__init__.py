"""The local stack: real services as local processes on 127.0.0.1, state under .loanrisk/."""
