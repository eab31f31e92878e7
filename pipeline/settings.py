"""The one typed, frozen settings object. Every field reads ``NEWSWIRE_<FIELD>``."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from pipeline.settings_index import IndexLifecycleFields
from pipeline.settings_recovery import WorkerRecoveryFields

#: Secrets that ship in example manifests (deploy/k8s/secret.yaml): a process given one of
#: them refuses to start, so no deployment runs with a password printed in this repository.
PLACEHOLDER_SECRETS = ("replace-me", "changeme", "change-me")


def is_placeholder(secret: str) -> bool:
    """True for an example value that must be replaced (``REPLACE-ME-...``, ``changeme``)."""
    value = secret.strip().lower()
    return value.startswith(PLACEHOLDER_SECRETS) or value == ""


#: What the project's CoreNLP servers run (local stack pom, Docker image); the server does
#: not report it. A test keeps it equal to ``deploy/local/corenlp/pom.xml``.
CORENLP_MODEL = "stanford-corenlp-4.5.10 english.all.3class.distsim.crf"


class Settings(BaseSettings, IndexLifecycleFields, WorkerRecoveryFields):
    """Newswire configuration; the README's table is generated from these fields."""

    model_config = SettingsConfigDict(env_prefix="NEWSWIRE_", frozen=True, extra="ignore")

    home: Path = Field(
        Path(".newswire"),
        description="NEWSWIRE_HOME: local stack jars, data and logs; git ignores it.",
    )
    kafka_bootstrap: str | None = Field(
        None,
        description="NEWSWIRE_KAFKA_BOOTSTRAP: host:port list; unset = the local stack's broker.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="NEWSWIRE_KAFKA_SECURITY_PROTOCOL: PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or "
        "SASL_SSL (SASL over TLS); every Kafka client of Newswire uses it.",
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description="NEWSWIRE_KAFKA_SSL_CAFILE: PEM file of the CA that signed the brokers' "
        "certificates; unset = the system CAs.",
    )
    kafka_ssl_certfile: Path | None = Field(
        None,
        description="NEWSWIRE_KAFKA_SSL_CERTFILE: PEM client certificate (mutual TLS), with "
        "NEWSWIRE_KAFKA_SSL_KEYFILE.",
    )
    kafka_ssl_keyfile: Path | None = Field(
        None, description="NEWSWIRE_KAFKA_SSL_KEYFILE: PEM private key of the client certificate."
    )
    kafka_ssl_key_password: SecretStr | None = Field(
        None, description="NEWSWIRE_KAFKA_SSL_KEY_PASSWORD: password of an encrypted key file."
    )
    kafka_ssl_check_hostname: bool = Field(
        True,
        description="NEWSWIRE_KAFKA_SSL_CHECK_HOSTNAME: check that the broker's certificate "
        "names the host connected to.",
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512",
        description="NEWSWIRE_KAFKA_SASL_MECHANISM: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 "
        "(the SASL_* protocols).",
    )
    kafka_sasl_username: str | None = Field(
        None, description="NEWSWIRE_KAFKA_SASL_USERNAME: SASL user (the SASL_* protocols)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None, description="NEWSWIRE_KAFKA_SASL_PASSWORD: SASL password."
    )
    search_engine: Literal["elasticsearch", "opensearch"] = Field(
        "elasticsearch",
        description="NEWSWIRE_SEARCH_ENGINE: the engine the local stack runs, and the one used "
        "when both URLs below are set.",
    )
    elasticsearch_url: str | None = Field(
        None,
        description="NEWSWIRE_ELASTICSEARCH_URL: an Elasticsearch 9.x cluster: one URL, or "
        "several nodes comma-separated (requests spread over them, a failed node is set aside); "
        "unset = the local stack's.",
    )
    elasticsearch_api_key: SecretStr | None = Field(
        None, description="NEWSWIRE_ELASTICSEARCH_API_KEY: API key for Elasticsearch."
    )
    elasticsearch_username: str | None = Field(
        None, description="NEWSWIRE_ELASTICSEARCH_USERNAME: basic-auth user."
    )
    elasticsearch_password: SecretStr | None = Field(
        None, description="NEWSWIRE_ELASTICSEARCH_PASSWORD: basic-auth password."
    )
    elasticsearch_ca_file: Path | None = Field(
        None,
        description="NEWSWIRE_ELASTICSEARCH_CA_FILE: PEM file of the CA that signed the "
        "cluster's HTTP certificate (https URLs); unset = the system CAs.",
    )
    elasticsearch_ssl_fingerprint: str | None = Field(
        None,
        description="NEWSWIRE_ELASTICSEARCH_SSL_FINGERPRINT: SHA-256 fingerprint (hex) of the "
        "cluster's certificate, pinned instead of a CA file.",
    )
    elasticsearch_verify_certs: bool = Field(
        True,
        description="NEWSWIRE_ELASTICSEARCH_VERIFY_CERTS: verify the certificate of https URLs "
        "(Elasticsearch and OpenSearch); turn off only for a throwaway test cluster.",
    )
    opensearch_url: str | None = Field(
        None,
        description="NEWSWIRE_OPENSEARCH_URL: an OpenSearch 2.x cluster (the optional backend).",
    )
    opensearch_username: str | None = Field(
        None, description="NEWSWIRE_OPENSEARCH_USERNAME: basic-auth user."
    )
    opensearch_password: SecretStr | None = Field(
        None, description="NEWSWIRE_OPENSEARCH_PASSWORD: basic-auth password."
    )
    opensearch_ca_file: Path | None = Field(
        None,
        description="NEWSWIRE_OPENSEARCH_CA_FILE: PEM file of the CA that signed the cluster's "
        "HTTP certificate; unset = the system CAs.",
    )
    kibana_url: str | None = Field(
        None, description="NEWSWIRE_KIBANA_URL: setup imports saved objects when set."
    )
    index_alias: str = Field(
        "newswire-articles", description="NEWSWIRE_INDEX_ALIAS: alias searched and written."
    )
    story_index: str = Field(
        "newswire-stories",
        description="NEWSWIRE_STORY_INDEX: one document per story (cluster), kept by the sink.",
    )
    topic_raw: str = Field("newswire.articles.raw", description="NEWSWIRE_TOPIC_RAW")
    topic_enriched: str = Field("newswire.articles.enriched", description="NEWSWIRE_TOPIC_ENRICHED")
    topic_dlq: str = Field("newswire.articles.dlq", description="NEWSWIRE_TOPIC_DLQ")
    topic_copies: str = Field(
        "newswire.articles.copies",
        description="NEWSWIRE_TOPIC_COPIES: exact copies dropped before enrichment, for their "
        "story's sources (the sink folds them into the stories index).",
    )
    topic_alert_queries: str = Field(
        "newswire.alerts.queries",
        description="NEWSWIRE_TOPIC_ALERT_QUERIES: compacted topic of standing queries "
        "(key: alert name; the list of record every worker follows).",
    )
    topic_alerts: str = Field(
        "newswire.alerts",
        description="NEWSWIRE_TOPIC_ALERTS: one record per standing-query match.",
    )
    topic_alerts_dead: str = Field(
        "newswire.alerts.dead",
        description="NEWSWIRE_TOPIC_ALERTS_DEAD: webhook deliveries that failed every try.",
    )
    topic_alerts_status: str = Field(
        "newswire.alerts.status",
        description="NEWSWIRE_TOPIC_ALERTS_STATUS: compacted topic of each alert's last "
        "webhook delivery (shown by `alerts list`).",
    )
    topic_alert_digests: str = Field(
        "newswire.alerts.digests",
        description="NEWSWIRE_TOPIC_ALERT_DIGESTS: compacted topic of each digest alert's "
        "progress (offsets delivered, the digest being sent), so a restart loses none.",
    )
    webhook_delivery: bool = Field(
        True,
        description="NEWSWIRE_WEBHOOK_DELIVERY: the worker also delivers alert webhooks (its "
        "own consumer group and tasks); false when `newswire alerts deliver` runs apart.",
    )
    webhook_attempts: int = Field(
        6, ge=1, description="NEWSWIRE_WEBHOOK_ATTEMPTS: tries before a dead letter."
    )
    webhook_timeout: float = Field(
        10.0, gt=0, description="NEWSWIRE_WEBHOOK_TIMEOUT: seconds per webhook request."
    )
    webhook_backoff: float = Field(
        1.0,
        gt=0,
        description="NEWSWIRE_WEBHOOK_BACKOFF: first retry delay (seconds), doubling up to 60.",
    )
    dlq_retention_days: float = Field(
        30.0,
        gt=0,
        description="NEWSWIRE_DLQ_RETENTION_DAYS: how long dead letters are kept "
        "(`retention.ms` of the DLQ topic, set at creation and by `setup`).",
    )
    topic_retention_days: float = Field(
        14.0,
        gt=0,
        description="NEWSWIRE_TOPIC_RETENTION_DAYS: how long the raw and enriched topics keep "
        "records (`retention.ms`, set at creation and by `setup`): the longest a worker may "
        "be down or stalled without losing input, and how far back `replay` reaches.",
    )
    longest_outage_days: float = Field(
        7.0,
        gt=0,
        description="NEWSWIRE_LONGEST_OUTAGE_DAYS: the longest outage of the workers or the "
        "search engine you plan for; `setup` warns when the topics' retention is shorter.",
    )
    topic_partitions: int = Field(4, description="NEWSWIRE_TOPIC_PARTITIONS: for `setup`.")
    topic_replication: int = Field(
        1,
        ge=1,
        description="NEWSWIRE_TOPIC_REPLICATION: replication factor of created topics; 3 on a "
        "cluster (`setup` refuses 1 on several brokers unless --force).",
    )
    topic_min_insync_replicas: int = Field(
        0,
        ge=0,
        description="NEWSWIRE_TOPIC_MIN_INSYNC_REPLICAS: `min.insync.replicas` of Newswire's "
        "topics (an acks=all write needs that many copies); 0 = replication - 1, between 1 and "
        "2 (2 with 3 replicas: one broker may be down, a second loss stops writes rather than "
        "risking acknowledged records).",
    )
    worker_id: str = Field("newswire", description="NEWSWIRE_WORKER_ID: Faust app id.")
    worker_web_host: str = Field(
        "127.0.0.1",
        description="NEWSWIRE_WORKER_WEB_HOST: address of the worker's web port; 0.0.0.0 in "
        "containers so probes reach it.",
    )
    worker_web_port: int = Field(
        6066, description="NEWSWIRE_WORKER_WEB_PORT: Faust web (metrics, health)."
    )
    story_window_days: float = Field(
        7.0,
        gt=0,
        description="NEWSWIRE_STORY_WINDOW_DAYS: how long duplicate fingerprints and story "
        "clusters are remembered: the story table's day indices older than this are deleted "
        "by the workers.",
    )
    story_table_index: str = Field(
        "newswire-story-table",
        description="NEWSWIRE_STORY_TABLE_INDEX: prefix of the story table's day indices "
        "(`<prefix>-YYYYMMDD`, one small document per article of the window, shared by every "
        "worker: what a worker holds does not grow with the volume).",
    )
    worker_session_timeout: float = Field(
        20.0,
        description="NEWSWIRE_WORKER_SESSION_TIMEOUT: seconds before a dead worker's partitions "
        "are given to the others.",
    )
    worker_buffer: int = Field(
        4096,
        ge=10,
        description="NEWSWIRE_WORKER_BUFFER: records each agent of the worker may hold "
        "fetched but not yet taken (Faust's stream buffer); a stalled sink holds at most this "
        "many and never stops the enrichment.",
    )
    batch_size: int = Field(
        64, description="NEWSWIRE_BATCH_SIZE: records per enrichment / bulk batch."
    )
    batch_seconds: float = Field(
        0.05,
        gt=0,
        description="NEWSWIRE_BATCH_SECONDS: how long an agent waits for more records before "
        "it takes a batch that is not full. Short: sparse input is not held back, and a busy "
        "worker's batches fill by themselves while it works on the previous one.",
    )
    nlp_threads: int = Field(
        2,
        ge=1,
        description="NEWSWIRE_NLP_THREADS: enrichment threads per worker; a batch is cut into "
        "small parts enriched side by side, so the worker's own work overlaps its waits for "
        "the CoreNLP server (spaCy is given one part at a time).",
    )
    index_refresh: Literal["false", "true", "wait_for"] = Field(
        "true",
        description="NEWSWIRE_INDEX_REFRESH: the sink's bulk `refresh`: true (the shards "
        "written are refreshed before the answer: searchable once acknowledged, one refresh "
        "per bulk request, and bulk requests grow when the worker is busy), false (searchable "
        "at the index's next scheduled refresh, `refresh_interval` 1s: about 0.5 s later on "
        "average, fewer and larger segments) or wait_for.",
    )
    max_body_chars: int = Field(
        200_000,
        description="NEWSWIRE_MAX_BODY_CHARS: longer bodies are cut (and counted), not dropped.",
    )
    max_retries: int = Field(
        8,
        description="NEWSWIRE_MAX_RETRIES: failed bulk tries before the sink reports "
        "itself stalled (it keeps retrying; nothing is dropped).",
    )
    batch_failure_retries: int = Field(
        2,
        ge=0,
        description="NEWSWIRE_BATCH_FAILURE_RETRIES: how many more times a batch that fails "
        "with an unexpected error is tried whole before it is split to isolate the records "
        "that fail (they go to the DLQ with their traceback; the rest go on).",
    )
    feeds_file: Path = Field(
        Path("feeds.yaml"), description="NEWSWIRE_FEEDS_FILE: YAML or OPML feed list."
    )
    seeds_dir: Path = Field(Path("seeds"), description="NEWSWIRE_SEEDS_DIR: replayed by `run`.")
    user_agent: str = Field(
        "Newswire/0.1 (+https://github.com/newswire/newswire)",
        description="NEWSWIRE_USER_AGENT: sent with every feed request.",
    )
    poll_interval: float = Field(
        900.0, description="NEWSWIRE_POLL_INTERVAL: default seconds between polls of a feed."
    )
    allow_private_feeds: bool = Field(
        False,
        description="NEWSWIRE_ALLOW_PRIVATE_FEEDS: allow feeds on loopback/private addresses.",
    )
    poll_min_interval: float = Field(
        60.0, description="NEWSWIRE_POLL_MIN_INTERVAL: shortest seconds between polls of a feed."
    )
    poll_max_interval: float = Field(
        6 * 3600.0, description="NEWSWIRE_POLL_MAX_INTERVAL: longest seconds between polls."
    )
    poll_backoff_base: float = Field(
        60.0, description="NEWSWIRE_POLL_BACKOFF_BASE: first retry delay after a failure."
    )
    poll_backoff_cap: float = Field(
        24 * 3600.0, description="NEWSWIRE_POLL_BACKOFF_CAP: longest retry delay (failures)."
    )
    poll_concurrency: int = Field(64, description="NEWSWIRE_POLL_CONCURRENCY: fetches at once.")
    poll_per_host: int = Field(2, description="NEWSWIRE_POLL_PER_HOST: fetches at once per host.")
    poll_host_gap: float = Field(
        2.0,
        ge=0,
        description="NEWSWIRE_POLL_HOST_GAP: minimum seconds between request starts to one "
        "host (2 s: 450 feeds of one publisher still fit the default 15-minute interval).",
    )
    poll_first_spread: float = Field(
        900.0,
        ge=0,
        description="NEWSWIRE_POLL_FIRST_SPREAD: first polls of new feeds are spread over "
        "min(their interval, this many seconds), by a fraction fixed by the feed key.",
    )
    poll_disable_404: int = Field(
        5, gt=0, description="NEWSWIRE_POLL_DISABLE_404: consecutive 404s that disable a feed."
    )
    poll_disable_dns_days: float = Field(
        3.0,
        gt=0,
        description="NEWSWIRE_POLL_DISABLE_DNS_DAYS: days of DNS failures that disable a feed.",
    )
    poll_disable_days: float = Field(
        14.0,
        gt=0,
        description="NEWSWIRE_POLL_DISABLE_DAYS: days of any failure that disable "
        "a feed (410 Gone disables at once).",
    )
    poll_probe_interval: float = Field(
        86400.0,
        gt=0,
        description="NEWSWIRE_POLL_PROBE_INTERVAL: seconds between probes of a "
        "disabled feed (a success enables it again).",
    )
    feeds_follow_seconds: float = Field(
        10.0,
        gt=0,
        description="NEWSWIRE_FEEDS_FOLLOW_SECONDS: how often a running poller applies feed "
        "list changes from the feeds topic (newswire feeds add / remove / import).",
    )
    poll_max_hosts: int = Field(
        1024,
        gt=0,
        description="NEWSWIRE_POLL_MAX_HOSTS: distinct hosts the fetcher's DNS cache "
        "remembers before it is cleared (per-host limits are dropped when idle).",
    )
    poll_timeout: float = Field(30.0, description="NEWSWIRE_POLL_TIMEOUT: seconds per fetch.")
    poll_connect_timeout: float = Field(
        10.0, description="NEWSWIRE_POLL_CONNECT_TIMEOUT: seconds to connect."
    )
    poll_max_bytes: int = Field(
        10 * 1024 * 1024,
        description="NEWSWIRE_POLL_MAX_BYTES: largest feed body, also after decompression.",
    )
    poll_max_redirects: int = Field(5, description="NEWSWIRE_POLL_MAX_REDIRECTS")
    poll_parse_workers: int = Field(
        0,
        description="NEWSWIRE_POLL_PARSE_WORKERS: feed-parsing processes; 0 = one per CPU the "
        "process may use (affinity and cgroup quota).",
    )
    poll_parse_timeout: float = Field(
        60.0,
        gt=0,
        description="NEWSWIRE_POLL_PARSE_TIMEOUT: seconds a feed parse or full-text extraction "
        "may take before its process is killed and the document counted as bad input.",
    )
    poll_seen_items: int = Field(
        64,
        gt=0,
        le=1000,
        description="NEWSWIRE_POLL_SEEN_ITEMS: items remembered per feed (12 bytes each: "
        "fingerprint and content hash), the newest of what the feed still shows.",
    )
    poller_metrics_host: str = Field(
        "127.0.0.1", description="NEWSWIRE_POLLER_METRICS_HOST: /metrics and /health address."
    )
    poller_metrics_port: int = Field(
        9108, description="NEWSWIRE_POLLER_METRICS_PORT: /metrics and /health; 0 = off."
    )
    topic_poller_state: str = Field(
        "newswire.poller.state", description="NEWSWIRE_TOPIC_POLLER_STATE: compacted state topic."
    )
    topic_feeds: str = Field(
        "newswire.feeds",
        description="NEWSWIRE_TOPIC_FEEDS: the feed list of record; its partitions split "
        "feeds among pollers.",
    )
    poller_group: str = Field(
        "newswire-poller", description="NEWSWIRE_POLLER_GROUP: consumer group of the pollers."
    )
    poller_partitions: int = Field(
        16, description="NEWSWIRE_POLLER_PARTITIONS: partitions of the feeds topic."
    )
    poller_session_timeout_ms: int = Field(
        10_000, description="NEWSWIRE_POLLER_SESSION_TIMEOUT_MS: dead-poller detection."
    )
    kafka_port: int = Field(19092, description="NEWSWIRE_KAFKA_PORT: local stack broker port.")
    kafka_controller_port: int = Field(
        19093, description="NEWSWIRE_KAFKA_CONTROLLER_PORT: local stack controller port."
    )
    search_port: int = Field(19200, description="NEWSWIRE_SEARCH_PORT: local search HTTP port.")
    search_transport_port: int = Field(
        19300, description="NEWSWIRE_SEARCH_TRANSPORT_PORT: local search transport port."
    )
    kafka_heap: str = Field("512m", description="NEWSWIRE_KAFKA_HEAP: local broker heap.")
    search_heap: str = Field("1g", description="NEWSWIRE_SEARCH_HEAP: local search heap.")
    ner_backend: Literal["corenlp", "spacy"] = Field(
        "corenlp",
        description="NEWSWIRE_NER_BACKEND: entity recogniser of the worker and of "
        "`newswire enrich`: corenlp (a Stanford CoreNLP server over HTTP, GPL-3.0, never "
        "linked) or spacy (in-process, lower quality).",
    )
    corenlp_url: str | None = Field(
        None,
        description="NEWSWIRE_CORENLP_URL: a CoreNLP server, or several (comma-separated): "
        "every request goes to the endpoint with the fewest requests in flight (round-robin "
        "on ties) and fails over to the next when one is down; unset = the local stack's.",
    )
    corenlp_resolve_seconds: float = Field(
        30.0,
        ge=0,
        description="NEWSWIRE_CORENLP_RESOLVE_SECONDS: how often the host names of plain-http "
        "CoreNLP URLs are resolved again, each address becoming an endpoint (a Kubernetes "
        "headless Service: one per ready pod); 0 = connect by name, no re-resolution.",
    )
    corenlp_port: int = Field(
        19500, description="NEWSWIRE_CORENLP_PORT: local stack CoreNLP server port."
    )
    corenlp_model: str = Field(
        CORENLP_MODEL,
        description="NEWSWIRE_CORENLP_MODEL: the CoreNLP version and NER model the server "
        "runs (it does not report them), written into each record's recogniser_model.",
    )
    corenlp_heap: str = Field("384m", description="NEWSWIRE_CORENLP_HEAP: local CoreNLP heap.")
    corenlp_timeout: float = Field(
        60.0,
        description="NEWSWIRE_CORENLP_TIMEOUT: seconds per CoreNLP request; a timeout or "
        "outage is retried, never indexed without entities.",
    )
    eval_dir: Path = Field(
        Path("../shared/eval"), description="NEWSWIRE_EVAL_DIR: evaluation data."
    )
    log_level: str = Field("INFO", description="NEWSWIRE_LOG_LEVEL")
    log_format: Literal["console", "json"] = Field(
        "console", description="NEWSWIRE_LOG_FORMAT: console or json lines."
    )

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        """Refuse the example passwords of the shipped manifests (and empty ones)."""
        for name, field in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr) and is_placeholder(value.get_secret_value()):
                env = f"NEWSWIRE_{name.upper()}"
                raise ValueError(
                    f"{env} is a placeholder or empty: set a real secret (deploy/k8s/secret.yaml "
                    f"and the compose file ship none); {field.description or ''}".rstrip("; ")
                )
        return self


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
