"""Stage 2 of a batch's path: indices → a fetched, transformed, collated batch."""
