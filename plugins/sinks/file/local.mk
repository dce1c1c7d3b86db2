# file sink
