#!/bin/sh
# The campaign's seed 1093341921, its first 55 operations (a failpoints build, the default kinds).
# LOCKOUT on 3c2fe33 (session 8, open): a webhook-secret rotate killed in git-push had started its
# rollback; upstream then committed a compose.env that changes KOMODO_WEBHOOK_SECRET (the run's own
# key) and the DB password. Every `resume` (and `rescue`, which finishes an env-only run as resume
# does) fails at undo:git-push: "push rejected: origin/main moved on and changed compose.env in 1
# commit(s); not retried (the rotation's base is stale)", exit 5, journal kept; recovery never
# reaches verify 0. Timing-dependent (the kill lands by time).
# Fixed in 7dc264b (session 9): git-push's undo drops a recorded revert the remote refused because the
# branch moved on with compose.env changes, and reverts again on top of the branch. The deterministic
# regression is tests/e2e_undo_by_value.rs (an_unpushed_revert_under_a_colleagues_push_...). Its replay
# on the session 9 build (57f9150) ended 0/0, the kill landing elsewhere that time.
# replay: testcontainers/campaign-scripts/lockout-1093341921-55.sh [--tool OTHER-BUILD/komodo-rotate]
exec "$(dirname "$0")/../campaign" --seed 1093341921 --ops 55 --kinds db-password,jwt-secret,webhook-secret,env:REHEARSAL_API_TOKEN --variant mongo --no-shrink "$@"
