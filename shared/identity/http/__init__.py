"""The identity HTTP surface: the ``auth`` and ``accounts`` routers and their route modules."""
