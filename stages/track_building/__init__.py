"""Track building: connected components, junction removal, walkthrough, assignment."""
