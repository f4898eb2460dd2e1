"""Event file formats: TrackML CSV (``trackml``) and ACTS CSV output (``acts``), read into and
written from ``EventTables``."""
