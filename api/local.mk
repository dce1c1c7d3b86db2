# Build rules for api (none yet).
