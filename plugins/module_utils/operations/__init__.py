"""operations layer of the bootc.composefs library (see docs/architecture.md)."""
