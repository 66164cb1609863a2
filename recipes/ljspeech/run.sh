#!/usr/bin/env bash
# LJSpeech 1.1 (24 h, one speaker):
# download -> manifests -> LM -> train -> tune -> evaluate
#
#   recipes/ljspeech/run.sh                       # downloads 2.6 GB
#   recipes/ljspeech/run.sh --data-dir DIR --exp-dir exp/ljspeech-2 -- epochs=5
#
# Stages: 0 download + verify + extract (skipped with --data-dir), 1 manifests
# (recipes/ljspeech/prepare.py), then the shared stages 2-6 of recipes/stages.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lexicon=0
source "$here/../stages.sh"
parse_options "$@"
corpus_stages "$here/prepare.py"
library_stages "LJSpeech"
