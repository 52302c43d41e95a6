"""Stage 5: tables and plots over all runs of a sweep."""
