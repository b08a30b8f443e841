#!/bin/sh
# The campaign's seed 4178972239, its first 55 operations (a failpoints build, the default kinds).
# LOCKOUT on 2b92cb6 (session 10, build s10b), FIXED in 58217fd: a jwt-secret rotate with a
# foreign `sops set` in flight and a failpoint before commit (op 3) rolled back to exit 5 (the
# edit kept; ours had reached origin). The operator's later commits of compose.env (foreign sops
# sets, hand edits of the DB password) stayed local (their push refused beside the pending
# journal), and upstream commits touched compose.env (op 27): HEAD diverged from origin/main with
# compose.env changed on both sides. Every resume and rescue then made or replayed git-push's
# undo revert on top of the operator's commits and pushed HEAD: "push rejected: origin/main moved
# on and changed compose.env in 1 commit(s); not retried (the rotation's base is stale)", exit 5
# for ever. The fix: git-push's undo sets the remote branch back on its own (a commit on top of
# the fetched branch made without the checkout, pushed) and leaves HEAD's side to git-commit's
# undo or the revert recorded. Regression tests: tests/e2e_undo_by_value.rs
# (a_checkout_that_cannot_reach_the_moved_branch_sets_it_back_on_its_own,
# a_revert_recorded_on_top_of_the_operators_commit_is_not_pushed_again), red before the fix.
# Timing-dependent through the SIGKILLs and the in-flight `sops set` of other ops.
# replay: testcontainers/campaign-scripts/lockout-4178972239-55.sh [--tool OTHER-BUILD/komodo-rotate] [--keep]
exec "$(dirname "$0")/../campaign" --seed 4178972239 --ops 55 --kinds db-password,jwt-secret,webhook-secret,env:REHEARSAL_API_TOKEN --variant mongo --no-shrink "$@"
