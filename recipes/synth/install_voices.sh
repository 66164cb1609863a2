#!/usr/bin/env bash
# Debian packages for the offline voices (asr/synthesis.py): espeak-ng, the MBROLA voices
# us1/us2/us3/en1 and 16 of other languages (espeak-ng makes them read English), flite,
# SVOX pico, RHVoice's English voices, Festival with five English voices, and the King James
# Bible text. MBROLA voices and pico are in Debian's contrib and non-free components, which
# this enables (bookworm or later; run as root).
set -euo pipefail
if [ -f /etc/apt/sources.list.d/debian.sources ] && ! grep -qs "non-free" /etc/apt/sources.list.d/*.sources /etc/apt/sources.list; then
  suites=$(sed -n 's/^Suites: *//p' /etc/apt/sources.list.d/debian.sources | head -1)
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$suites" > /etc/apt/sources.list.d/asr-contrib-non-free.sources
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq espeak-ng flite libttspico-utils \
  mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 \
  mbrola-af1 mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-fr1 mbrola-fr4 mbrola-gr2 \
  mbrola-hu1 mbrola-nl2 mbrola-pl1 mbrola-ro1 mbrola-sw1 mbrola-sw2 \
  rhvoice rhvoice-english festival festvox-kallpc16k festvox-kdlpc16k festvox-rablpc16k festvox-don festvox-us-slt-hts bible-kjv > /dev/null
echo "speech engines installed: $(command -v espeak-ng flite pico2wave RHVoice-test text2wave | tr '\n' ' ')"
