# Build rules for host/aws (none yet).
