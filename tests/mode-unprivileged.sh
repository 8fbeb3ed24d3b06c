#!/bin/sh
# One mode of the test matrix: see run-suite.sh.
exec "$(dirname "$0")/run-suite.sh" auto auto unprivileged
