"""checkout: server-rendered pages under /pay (issue 10)."""
