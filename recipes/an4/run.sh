#!/usr/bin/env bash
# AN4 (CMU census database: 50 min of spelled names, digits and control words, 16 kHz):
# download -> manifests -> LM -> train -> tune -> evaluate
#
#   recipes/an4/run.sh                       # downloads 64 MB
#   recipes/an4/run.sh --data-dir DIR --exp-dir exp/an4-2 -- epochs=5
#
# Stages: 0 download + verify + extract (skipped with --data-dir), 1 manifests
# (recipes/an4/prepare.py), then the shared stages 2-6 of recipes/stages.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lexicon=1  # a closed vocabulary: the decoder only writes training words
source "$here/../stages.sh"
parse_options "$@"
corpus_stages "$here/prepare.py"
library_stages "AN4"
