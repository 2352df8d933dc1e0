-- The offline reconciler claims overdue nodes in two halves of the fleet
-- side by side (a hash of the node id), each most overdue first. The half
-- leads the deadline indexes, so each claim is one ordered range scan: with
-- the half only as a filter, the planner took a 1-in-200 guess for it, and
-- once most of a 1,000,000-node fleet was due it sorted every due row for
-- each batch of 5,000 (1.4 s a batch instead of milliseconds).
DROP INDEX node_liveness_offline_due;
DROP INDEX node_liveness_stale_due;
CREATE INDEX node_liveness_offline_due
    ON node_liveness ((hashtext(node_id) & 1), offline_after) WHERE offline_after IS NOT NULL;
CREATE INDEX node_liveness_stale_due
    ON node_liveness ((hashtext(node_id) & 1), stale_after) WHERE stale_after IS NOT NULL;
-- The planner's estimate of a half (1 in 2, not its default 1 in 200):
-- statistics on a partial index's expression are not used for estimates.
CREATE STATISTICS node_liveness_half ON (hashtext(node_id) & 1) FROM node_liveness;
ANALYZE node_liveness;
