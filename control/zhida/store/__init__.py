"""Call records: every call's transcript, decision, agent, timings, outcome and feedback, behind SQLAlchemy.

SQLite on one box by default (`sqlite:///run/data/zhida.db`), PostgreSQL by URL for a cluster. The
`CallRecorder` is an EventBus sink that writes from a worker thread, so the call path never waits on the
database; `CallStore` reads the records back for the CRM API.
"""

from zhida.store.db import DEFAULT_URL, open_engine
from zhida.store.queries import CallStore, PageCursor
from zhida.store.recorder import CallRecorder

__all__ = ["DEFAULT_URL", "CallRecorder", "CallStore", "PageCursor", "open_engine"]
