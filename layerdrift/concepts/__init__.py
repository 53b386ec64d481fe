"""Vocabularies of concepts and the prompt templates they are poured into."""

from layerdrift.concepts.vocabulary import BUILTIN_VOCABULARIES, Vocabulary, load_vocabulary, render_prompts

__all__ = ["BUILTIN_VOCABULARIES", "Vocabulary", "load_vocabulary", "render_prompts"]
