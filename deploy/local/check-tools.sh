#!/usr/bin/env bash
# The local stack needs Java 17+ and Maven; say what to install instead of failing later.
missing=()
command -v java >/dev/null || missing+=("a JDK 17+ (apt-get install openjdk-17-jdk-headless)")
command -v mvn >/dev/null || missing+=("Maven (apt-get install maven)")
if ((${#missing[@]})); then
  printf 'warning: the local stack needs %s\n' "${missing[@]}" >&2
fi
exit 0
