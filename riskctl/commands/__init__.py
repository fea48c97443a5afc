"""One module per command group; riskctl.main registers them."""
