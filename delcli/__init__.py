"""del: dense audio-visual event localization."""

__version__ = "0.1.0"
