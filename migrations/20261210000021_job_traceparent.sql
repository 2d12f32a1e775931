-- The W3C traceparent of the span that enqueued a job (issue 18): the
-- worker's `process <queue>` span continues that trace, and the repair
-- loop re-dispatches a job Redis lost with it, so the job's trace survives
-- a Redis failure too. NULL when tracing was off and the caller sent none.
-- Adding a nullable column without a default changes only the catalog (no
-- rewrite of the partitions).
ALTER TABLE job_runs ADD COLUMN traceparent text
    CHECK (traceparent IS NULL OR length(traceparent) <= 128);
