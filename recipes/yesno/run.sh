#!/usr/bin/env bash
# YESNO (60 recordings of eight Hebrew yes/no words; the smoke test):
# download -> manifests -> LM -> train -> tune -> evaluate
#
#   recipes/yesno/run.sh                       # downloads 4.5 MB
#   recipes/yesno/run.sh --data-dir DIR --exp-dir exp/yesno-2 -- epochs=5
#
# Stages: 0 download + verify + extract (skipped with --data-dir), 1 manifests
# (recipes/yesno/prepare.py), then the shared stages 2-6 of recipes/stages.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lexicon=1  # a closed vocabulary: the decoder only writes training words
lm_order=2
source "$here/../stages.sh"
parse_options "$@"
corpus_stages "$here/prepare.py"
library_stages "YESNO"
