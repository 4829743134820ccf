"""Cross-cutting pieces every capability uses, each written once."""
