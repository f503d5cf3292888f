"""Stage 3 of a batch's path: crossing the process boundary — messages and shared-memory slots."""
