"""Field Kit shared core: config, database, ledger, bus, service runner, web shell, CLI root."""

__version__ = "0.1.0"
