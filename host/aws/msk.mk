# MSK IAM token signer (none yet).
