#!/bin/sh
# The campaign's seed 3352959679, its first 4 operations (a failpoints build, the default kinds).
# Op 4: `rotate db-password` while the world stops Mongo (`docker stop`) during the run. When
# the stop lands before change-db reaches Mongo, the driver never selects a server: on 81a585b
# change-db and its undo both failed ("server selection timeout ... connection refused") and the
# run ended 5 with nothing split (the referee's snapshot unchanged): a contract violation. Fixed:
# change-db proves it sent nothing (Error::Untouched), the runner leaves it out of the rollback,
# the rollback proof takes the unreachable, never-changed Mongo as the pre-flight found it: 4.
# Timing-dependent (the stop may land elsewhere); the deterministic test is
# e2e_product::db_password_kills_inside_steps_reach_each_resume_branch (tests/e2e_support/unreached.rs).
# replay: testcontainers/campaign-scripts/seed-3352959679-4.sh [--tool OTHER-BUILD/komodo-rotate]
exec "$(dirname "$0")/../campaign" --seed 3352959679 --ops 4 --kinds db-password,jwt-secret,webhook-secret,env:REHEARSAL_API_TOKEN --variant mongo --no-shrink "$@"
