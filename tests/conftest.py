"""Shared fixtures. Infrastructure fixtures (engine, registry, servers) live in tests/infra."""

pytest_plugins = [
    "tests.infra.docker_fixtures",
    "tests.infra.server_fixtures",
]
