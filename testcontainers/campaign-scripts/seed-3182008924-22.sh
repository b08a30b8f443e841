#!/bin/sh
# The campaign's seed 3182008924, its first 22 operations (a failpoints build, the default kinds).
# Op 15 SIGKILLs a jwt-secret rotate in its recreate of core (after git-commit, before git-push: a journal
# pending); op 22 `rescue` (DB password hand-edited at op 14 and redeployed at op 17).
# On 017280f: rescue took the JWT run over and exited 0 with the run's commit never pushed:
# verify 1 (git-upstream), and nothing in the tool pushes it: a lockout. On the earlier build
# of the first finding (bin-v2): rescue exit 3 after moving the journal to taken-over/.
# Fixed: a refusal leaves the journal where it was; an env-only kind's pending run is finished
# as resume does (its push included) before rescue acts.
# replay: testcontainers/campaign-scripts/seed-3182008924-22.sh [--tool OLD-BUILD/komodo-rotate]
exec "$(dirname "$0")/../campaign" --seed 3182008924 --ops 22 --kinds db-password,jwt-secret,webhook-secret,env:REHEARSAL_API_TOKEN --variant mongo --no-shrink "$@"
