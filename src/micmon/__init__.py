"""micmon: learn to recognise a sound from labelled recordings, then listen for it."""

__version__ = "0.2.0"
