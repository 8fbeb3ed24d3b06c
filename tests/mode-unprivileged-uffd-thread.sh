#!/bin/sh
# One mode of the test matrix: see run-suite.sh.  The handler-thread stack
# mode as nobody: userfaultfd falls back to UFFD_USER_MODE_ONLY.
exec "$(dirname "$0")/run-suite.sh" uffd-thread auto unprivileged
