# Build rules for tests (filled in by the foundation).
