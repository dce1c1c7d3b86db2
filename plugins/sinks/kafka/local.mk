# Build rules for plugins/sinks/kafka (none yet).
