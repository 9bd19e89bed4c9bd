-- Events a pipeline publishes (event.publish) enter the same path as POST /events.
ALTER TABLE events DROP CONSTRAINT events_source_check;
ALTER TABLE events ADD CONSTRAINT events_source_check
    CHECK (source IN ('api', 'stream', 'sqs', 'eventbridge', 'shared', 'pipeline'));
