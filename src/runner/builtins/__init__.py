"""The built-in plugins. They are registered through entry points in
``pyproject.toml`` exactly like third-party plugins, and use only the public
API in :mod:`runner.plugin`."""
