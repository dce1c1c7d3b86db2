# Build rules for host/avro (none yet).
