"""dlrosetta: the same deep-learning models, timed in every language and framework."""
__version__ = "0.1.0"
