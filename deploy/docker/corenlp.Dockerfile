# syntax=docker/dockerfile:1
# Stanford CoreNLP server, Newswire's default entity recogniser, built from Maven Central
# with the same pom as the local stack (deploy/local/corenlp/pom.xml): stanford-corenlp
# and its runtime jars, plus ONE model file extracted from the 474 MB `models` jar.
#
#   docker build -f deploy/docker/corenlp.Dockerfile -t newswire-corenlp .
#
# CoreNLP is GPL-3.0 (https://stanfordnlp.github.io/CoreNLP/). This image runs it as its own
# server; Newswire (Apache-2.0) never links it and talks to it over HTTP only.

ARG MAVEN_IMAGE=maven:3.9-eclipse-temurin-17
ARG JRE_IMAGE=eclipse-temurin:17-jre

FROM ${MAVEN_IMAGE} AS build
WORKDIR /build
COPY deploy/local/corenlp/pom.xml pom.xml
RUN mvn -B -q -Dstyle.color=never \
        -Dnewswire.corenlp.lib=/opt/corenlp/lib \
        -Dnewswire.corenlp.models=/opt/corenlp/models \
        dependency:copy-dependencies@corenlp dependency:unpack@corenlp-model \
    && rm -rf /opt/corenlp/models/.markers /root/.m2

FROM ${JRE_IMAGE} AS runtime
LABEL org.opencontainers.image.title="newswire-corenlp" \
      org.opencontainers.image.description="Stanford CoreNLP server (tokenize, ssplit, ner) for Newswire" \
      org.opencontainers.image.licenses="GPL-3.0-or-later"
COPY --from=build /opt/corenlp /opt/corenlp
COPY deploy/docker/corenlp.properties /opt/corenlp/server.properties
RUN useradd --system --uid 10002 --home-dir /opt/corenlp corenlp
USER 10002:10002
ENV CORENLP_HEAP=384m
EXPOSE 9000
CMD ["sh", "-c", "exec java -Xmx${CORENLP_HEAP} -XX:+ExitOnOutOfMemoryError -cp '/opt/corenlp/lib/*' edu.stanford.nlp.pipeline.StanfordCoreNLPServer -port 9000 -threads 1 -timeout 120000 -maxCharLength 1000000 -quiet -serverProperties /opt/corenlp/server.properties -preload tokenize,ssplit,ner"]
