-- The W3C traceparent of the request that created a run (run_now, POST /events), when tracing
-- is on: the worker continues that trace, so one trace shows a request and the run it caused.
ALTER TABLE runs ADD COLUMN trace_context text
    CONSTRAINT runs_trace_context_length CHECK (length(trace_context) <= 128);
