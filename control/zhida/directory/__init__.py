"""The platform directory: tenants, 400 numbers, agent groups, agents (SIP accounts) and trunks.

It lives in Kamailio's own database, so that Kamailio authenticates agents (`subscriber`), trusts trunks
(`address`) and maps numbers to tenants (`zhida_numbers`, `zhida_fallback` htables) from the same rows.
"""

from zhida.directory.store import AgentCredentials, Directory, DirectoryError

__all__ = ["AgentCredentials", "Directory", "DirectoryError"]
