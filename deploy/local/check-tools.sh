#!/usr/bin/env bash
# Tools outside Python that `make test` and `make run` need: Java 17+ and Maven for the local
# stack, Debian's docker-compose to validate docker-compose.yml (no engine is needed for that).
# Installs what it can (as root with apt-get), and says what to install otherwise.
missing=()
command -v java >/dev/null || missing+=("openjdk-17-jdk-headless")
command -v mvn >/dev/null || missing+=("maven")
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=("docker-compose")
((${#missing[@]})) || exit 0
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "installing ${missing[*]} (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "warning: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
fi
exit 0
