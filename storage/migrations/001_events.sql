-- One row per recorded event. Reasons and measurements: docs/recording-store.md.
--
-- ORDER BY (hour, session_id, seq): fleet search always names a time range (or takes the newest
-- first), and the hour prefix turns it into a primary-key range; within the hour a session's events
-- sit together in seq order, so they compress against each other, and replay reads one session
-- as a key range given its span (sessions.started_at … last_at).
-- index_granularity 2048: a page of search results reads one granule per row of every column it
-- returns; smaller granules read less for it (and cost 0.7% more bytes than 8192).
-- ReplacingMergeTree: a batch stored twice (redelivery after a crash) collapses to one row per
-- (session_id, seq) when parts merge. The store also skips events already stored, and reads
-- dedupe (LIMIT 1 BY), so a duplicate is never visible even before a merge.
-- PARTITION BY month: retention drops old months, and a time range skips other months.
CREATE TABLE IF NOT EXISTS events
(
    session_id String CODEC(ZSTD(3)),
    seq UInt64 CODEC(Delta, ZSTD(3)),
    time_us Int64 EPHEMERAL,
    time DateTime64(6, 'UTC') DEFAULT fromUnixTimestamp64Micro(time_us, 'UTC') CODEC(Delta, ZSTD(3)),
    version UInt32 CODEC(ZSTD(3)),
    -- The body as proto3 JSON: the source of truth, re-parsed and re-hashed by verification.
    -- ZSTD(9): bodies are most of what is stored after the hash; level 9 takes a command event's
    -- body from 16.4 to 13 bytes at no cost we could measure on insert.
    body String CODEC(ZSTD(9)),
    -- Derived from the body at insert (storage/rows.ts deriveColumns) so search can filter on them;
    -- verification checks them against the body.
    type LowCardinality(String),
    command UInt32 CODEC(ZSTD(3)),
    decision LowCardinality(String),
    rule LowCardinality(String),
    kinds Array(LowCardinality(String)),
    -- The command text is read from the body, not stored twice (8.7 bytes per command event saved),
    -- and cannot disagree with it.
    text String ALIAS JSONExtractString(body, 'command', 'text'),
    hash_hex String EPHEMERAL,
    -- SHA-256 does not compress: no codec spends no CPU trying.
    hash FixedString(32) DEFAULT unhex(hash_hex) CODEC(NONE),
    signature_hex String EPHEMERAL,
    signature String DEFAULT unhex(signature_hex) CODEC(ZSTD(1)),
    -- Full-text search over command texts: an inverted index of lower-cased words, built from the
    -- body at insert and row-level, so `hasAllTokens(lowerUTF8(text), …)` is answered from the
    -- index without reading bodies.
    INDEX text_idx lowerUTF8(text) TYPE text(tokenizer = splitByNonAlpha)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(time)
ORDER BY (toStartOfHour(time), session_id, seq)
SETTINGS index_granularity = 2048;
