-- One summary per session for fleet search (storage/session-rows.ts writes it with every batch).
--
-- Each insert adds what its batch says about a session; rows of one session merge with min, max
-- and set union only, so redelivered batches never count twice. Reads merge the partial rows (FINAL
-- or GROUP BY with the same functions) to see one row per session.
-- index_granularity 256: pages of search results read ~50 scattered sessions, ~600 bytes each
-- unpacked; 8192-row granules made that read 32 times more than it needs.
CREATE TABLE IF NOT EXISTS sessions
(
    session_id String,
    started_at SimpleAggregateFunction(min, DateTime64(6, 'UTC')),
    -- The latest event's time: replay reads events between started_at and last_at, a range of the
    -- events table's primary key.
    last_at SimpleAggregateFunction(max, DateTime64(6, 'UTC')),
    ended_at SimpleAggregateFunction(max, DateTime64(6, 'UTC')),
    user SimpleAggregateFunction(max, String),
    groups SimpleAggregateFunction(max, Array(String)),
    connection SimpleAggregateFunction(max, String),
    connection_type SimpleAggregateFunction(max, String),
    segment SimpleAggregateFunction(max, String),
    relay_id SimpleAggregateFunction(max, String),
    hub_id SimpleAggregateFunction(max, String),
    client_address SimpleAggregateFunction(max, String),
    target SimpleAggregateFunction(max, String),
    params SimpleAggregateFunction(max, String),
    commands SimpleAggregateFunction(max, UInt32),
    allowed SimpleAggregateFunction(max, UInt8),
    denied SimpleAggregateFunction(max, UInt8),
    reviewed SimpleAggregateFunction(max, UInt8),
    approvals SimpleAggregateFunction(max, UInt8),
    error_seqs SimpleAggregateFunction(groupUniqArrayArray, Array(UInt64)),
    end_error SimpleAggregateFunction(max, String),
    last_seq SimpleAggregateFunction(max, UInt64)
)
ENGINE = AggregatingMergeTree
ORDER BY session_id
SETTINGS index_granularity = 256;
