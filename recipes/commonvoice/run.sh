#!/usr/bin/env bash
# Common Voice, any language (MP3 clips + TSV; download by hand after accepting the terms):
# download -> manifests -> LM -> train -> tune -> evaluate
#
#   recipes/commonvoice/run.sh --data-dir cv-corpus-17.0-2024-03-15/en
#   recipes/commonvoice/run.sh --data-dir DIR --exp-dir exp/commonvoice-2 -- epochs=5
#
# Stages: 0 download + verify + extract (skipped with --data-dir), 1 manifests
# (recipes/commonvoice/prepare.py), then the shared stages 2-6 of recipes/stages.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lexicon=0
extra=()
recipe_usage() { header_usage; echo "options: --train-from train|validated"; }
recipe_option() {
  case "$1" in
  --train-from) extra+=(--train-from "$2"); taken=2 ;;
  esac
}
source "$here/../stages.sh"
parse_options "$@"
[ -n "$data_dir" ] || { echo "run.sh: Common Voice needs --data-dir (download a language by hand after accepting its terms)" >&2; exit 2; }
corpus_stages "$here/prepare.py" ${extra[@]+"${extra[@]}"}
library_stages "Common Voice"
