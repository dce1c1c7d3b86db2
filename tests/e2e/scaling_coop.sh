#!/usr/bin/env bash
# scaling.sh with partition.assignment.strategy cooperative-sticky: its own
# suite, so that scripts/test runs it beside the eager one.
SCALING_MODE=coop exec bash "$(dirname "$0")/scaling.sh"
