"""The range check reads back ranges really ingested: it uses the loader tests' private lane of stores."""
from payment_platform_tests.test_loader.conftest import lane  # noqa: F401 - a fixture, used by name
