"""scoreviz: score-based anomaly detection (SPR, Score-DD, DDAD), reproduced on one code base."""

__version__ = "0.1.0"
