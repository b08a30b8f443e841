#!/bin/sh
# The campaign's seed 3544153401, its first 21 operations (a failpoints build, the default kinds).
# Op 21: `rotate env:REHEARSAL_API_TOKEN + foreign sops set @223ms + failpoint before#10`. When
# the colleague's KOMODO_TITLE lands before the run reads compose.env, the run rolls back (4)
# with every secret back and the title kept; the campaign before this fix called that "exit 4
# but not as before: compose.env's values" (a false positive: only the title differed). When it
# lands after write-env, exit 5 naming the file with the edit kept. Timing-dependent.
# replay: testcontainers/campaign-scripts/seed-3544153401-21.sh [--tool OTHER-BUILD/komodo-rotate]
exec "$(dirname "$0")/../campaign" --seed 3544153401 --ops 21 --kinds db-password,jwt-secret,webhook-secret,env:REHEARSAL_API_TOKEN --variant mongo --no-shrink "$@"
