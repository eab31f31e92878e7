#!/usr/bin/env bash
# Tools outside Python that `make test` and `make run` need: a JDK 21+ for Elasticsearch 9 and
# its analysis plugin (Temurin 25 here), Java 17 for the optional OpenSearch 2.19 (it refuses
# Java 22+), Maven for the local stack, and Debian's docker-compose to validate
# docker-compose.yml (no engine is needed for that).
# Installs what it can (as root with apt-get), and says what to install otherwise.
missing=()

# The newest JDK in /usr/lib/jvm, JAVA_HOME or on PATH whose feature version is >= $1.
have_jdk() {
  local want=$1 home release version feature
  for home in ${JAVA_HOME:+"$JAVA_HOME"} /usr/lib/jvm/* "$(dirname "$(dirname "$(readlink -f "$(command -v java 2>/dev/null || echo /nonexistent)")")")"; do
    release="$home/release"
    [[ -x "$home/bin/java" && -f "$release" ]] || continue
    version=$(sed -n 's/^JAVA_VERSION="\([^"]*\)"/\1/p' "$release")
    feature=${version%%[.+_-]*}
    [[ "$feature" =~ ^[0-9]+$ ]] && ((feature >= want)) && return 0
  done
  return 1
}

command -v java >/dev/null || missing+=("openjdk-17-jdk-headless")
command -v mvn >/dev/null || missing+=("maven")
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=("docker-compose")

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  if ((${#missing[@]})); then
    echo "installing ${missing[*]} (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! have_jdk 21; then
    # Temurin 25 where its apt repository is configured, else the distribution's JDK 25 or 21.
    apt-get update -qq
    for pkg in temurin-25-jdk openjdk-25-jdk-headless openjdk-21-jdk-headless; do
      if apt-cache show "$pkg" >/dev/null 2>&1; then
        echo "installing $pkg (apt-get) for Elasticsearch 9" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg" >/dev/null && break
      fi
    done
  fi
elif ((${#missing[@]})); then
  echo "warning: please install ${missing[*]} (e.g. sudo apt-get install ${missing[*]})" >&2
fi
have_jdk 21 || echo "warning: no JDK 21+ found: Elasticsearch 9 needs one; install Temurin 25 (temurin-25-jdk) or OpenJDK 21+, or set JAVA_HOME to it" >&2
exit 0
