#!/bin/sh
# The campaign's seed 1602271867, its first 55 operations (a failpoints build, the default kinds).
# FIXED in 2b92cb6 (session 10): the git steps judge by value where the run's write went out under
# someone else's commit; regression tests in tests/e2e_undo_by_value.rs (a_run_swept_into_...), red
# before the fix. This script replayed 0/0 on the fixed build (s10a).
# LOCKOUT on 57f9150 (session 9): a jwt-secret rotate killed after write-env (op 24, before
# git-commit committed anything); the operator then hand-edits the DB password with sops, commits
# compose.env and pushes it (op 25) - that commit sweeps in the run's NEW KOMODO_JWT_SECRET, which
# write-env had left uncommitted, and takes it to origin. resume rolls
# forward: git-commit finds the file equal to HEAD (nothing of its own to commit), git-push is refused
# (origin changed compose.env meanwhile, op 38), and the rollback sets the key back by value in the work
# tree only; the rollback proof then fails for ever: "compose.env differs from HEAD's under
# KOMODO_JWT_SECRET" (HEAD is the operator's commit, holding NEW). resume and rescue exit 5 each time.
# Replayed with --keep on 57f9150: the same lockout. The host's git showed it: the operator's first
# "hand edit of the DB password" commit (also pushed to origin) changed KOMODO_JWT_SECRET from the old
# value to the run's new one; HEAD and origin hold NEW, the work tree OLD after the undo by value.
# The way out (built in 2b92cb6): judge git by value where the run's bytes went out under someone else's commit -
# git-push's apply done when the remote branch holds the run's new values under its keys (the roll
# forward then commits), and git-commit's/git-push's undo committing the keys back by value when HEAD
# or the remote hold NEW without our trailer.
# Timing-dependent only through the SIGKILLs of other ops; the failpoint of op 24 lands by step.
# replay: testcontainers/campaign-scripts/lockout-1602271867-55.sh [--tool OTHER-BUILD/komodo-rotate] [--keep]
exec "$(dirname "$0")/../campaign" --seed 1602271867 --ops 55 --kinds db-password,jwt-secret,webhook-secret,env:REHEARSAL_API_TOKEN --variant mongo --no-shrink "$@"
