"""Study-level housekeeping: archive a finished study, free the scratch space of finished runs."""
