"""Data sources: ACTS simulation, TrackML and ACTS CSV readers, hit transforms, the event graph."""
