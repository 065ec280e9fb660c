"""Hardware adapters: one module per kind of device, each with real and simulated backends."""
