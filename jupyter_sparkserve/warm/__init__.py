"""The warm scorer: a preloaded process that forks runs and jobs so they start at once."""
