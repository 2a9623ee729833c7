"""EROFS images of the composefs format: ``layout`` (on-disk structures), ``reader``, ``writer``."""
