# Build rules for plugins/sinks/s3 (none yet).
