"""Understanding: Baidu LAC word segmentation and tagging, with per-tenant custom dictionaries."""

from zhida.understanding.analyzer import Analyzer, Dictionary, Word, get_analyzer

__all__ = ["Analyzer", "Dictionary", "Word", "get_analyzer"]
