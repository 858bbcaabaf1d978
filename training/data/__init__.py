"""Training and evaluation data: corpora, NIAH and agent-memory generators, and a task mixture."""
