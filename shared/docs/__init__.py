"""docs: server-rendered pages under /docs (issue 10)."""
