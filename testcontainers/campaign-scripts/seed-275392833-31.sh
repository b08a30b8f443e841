#!/bin/sh
# The campaign's seed 275392833, its first 31 operations (a failpoints build, the default kinds).
# Op 4 crashes a jwt-secret rotate at its failpoint after#9 (past write-env and git-commit: a
# journal pending, compose.env on the new JWT, core and periphery on the old); upstream
# commits touch compose.env (ops 14, 15, 24), so op 26 `resume` cannot push nor revert (exit
# 5); op 31 `rescue` (the DB password hand-edited at op 18).
# On 017280f: rescue took the JWT run over and exited 0 with core and periphery on the old
# JWT (the referee and verify see the split; the campaign's contract before 660740d did not
# count a pending run's keys as rescue's). Fixed: rescue finishes an env-only kind's pending run
# first as resume does; here that finish ends 5 as op 26 did, so rescue says 5 with the
# journal kept (the git part is the known "undo after someone else changed compose.env" family).
# replay: testcontainers/campaign-scripts/seed-275392833-31.sh [--tool OLD-BUILD/komodo-rotate]
exec "$(dirname "$0")/../campaign" --seed 275392833 --ops 31 --kinds db-password,jwt-secret,webhook-secret,env:REHEARSAL_API_TOKEN --variant mongo --no-shrink "$@"
