-- Rate-limit windows are counted on every API request. Written to the write-ahead log, each
-- count waited for a flush to disk: on PostgreSQL that was the slowest part of a request that
-- reads nothing else (GET /api/v1/user: 2,550 -> 4,200 req/s unlogged). A counter lost in a
-- database crash only resets a window early, so the table is unlogged (PostgreSQL empties it
-- after a crash; standbys do not have it).
ALTER TABLE rate_limits SET UNLOGGED;
