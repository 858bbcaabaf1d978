"""Training and evaluation data: corpora, NIAH and agent-memory generators, and a task mixture.

>>> from hsa_memory.training.data import TaskMixture, Sources, s_niah, agent_memory
>>> example = s_niah(seed=0, target_tokens=1024, depth=0.5)
>>> rendered = example.to_chatml()
>>> rendered.span_text(rendered.answers[0]) == example.questions[0].answer
True
"""
from .agent_memory import agent_memory
from .corpora import (
    CorpusUnavailable, Gloss, austen_books, available_corpora, ensure_corpora, fallback_paragraphs, load_corpus,
    wordnet_glosses,
)
from .mix import DEFAULT_WEIGHTS, TASKS, Sources, TaskMixture, lm_segment
from .niah import mq_niah, s_niah, self_copy, variable_tracking
from .records import Example, Message, Question, Rendered
from .text import TextSource, estimate_tokens, resolve_counter

__all__ = [
    "Example", "Message", "Question", "Rendered",
    "s_niah", "mq_niah", "variable_tracking", "self_copy", "agent_memory", "lm_segment",
    "TaskMixture", "Sources", "TASKS", "DEFAULT_WEIGHTS",
    "TextSource", "estimate_tokens", "resolve_counter",
    "CorpusUnavailable", "Gloss", "ensure_corpora", "load_corpus", "austen_books", "wordnet_glosses",
    "fallback_paragraphs", "available_corpora",
]
