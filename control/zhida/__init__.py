"""zhida: one sentence, straight to the right agent."""

__version__ = "0.1.0"
