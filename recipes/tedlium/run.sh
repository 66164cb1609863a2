#!/usr/bin/env bash
# TED-LIUM release 3 (452 h of TED talks; legacy dev/test):
# download -> manifests -> LM -> train -> tune -> evaluate
#
#   recipes/tedlium/run.sh                       # downloads 54 GB
#   recipes/tedlium/run.sh --data-dir DIR --exp-dir exp/tedlium-2 -- epochs=5
#
# Stages: 0 download + verify + extract (skipped with --data-dir), 1 manifests
# (recipes/tedlium/prepare.py), then the shared stages 2-6 of recipes/stages.sh.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
lexicon=0
extra=()
recipe_usage() { header_usage; echo "options: --legacy-train (train on legacy/train, 207 h)"; }
recipe_option() {
  case "$1" in
  --legacy-train) extra+=(--legacy-train); taken=1 ;;
  esac
}
source "$here/../stages.sh"
parse_options "$@"
corpus_stages "$here/prepare.py" ${extra[@]+"${extra[@]}"}
library_stages "TED-LIUM 3"
