"""JSON routes: parse, call domain/jobs/store, respond."""
