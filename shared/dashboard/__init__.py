"""dashboard: server-rendered pages under /dashboard (issue 10)."""
