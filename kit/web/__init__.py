"""The web shell: app factory, sign-in, live updates, dashboard, OpenAPI."""
