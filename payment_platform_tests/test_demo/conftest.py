"""`payment-platform demo` is run like the stack commands: the stack tests' data dir fixture."""
from payment_platform_tests.test_stack.conftest import data_dir  # noqa: F401 - a fixture, used by name
