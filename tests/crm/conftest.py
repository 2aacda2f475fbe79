"""Fixtures of the CRM tests (defined in tests/crm/fixtures.py so that other suites can import them)."""

from tests.crm.fixtures import (  # noqa: F401 (pytest finds fixtures by name)
    crm_api,
    crm_channel,
    crm_directory,
    crm_tokens,
    publish_call,
    start_crm_api,
)
