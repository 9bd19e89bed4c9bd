-- Event routing stays flat as an agent's event tasks grow (issue 12). Each event read every
-- active event task of its publisher and tried its pattern (LIKE) against the topic: 2,000
-- subscriptions made every event cost ~2 ms of the database's CPU, even one nothing listens to.
-- A pattern without * matches only the topic equal to it, so those subscriptions are found by
-- one probe of (publisher, pattern); only the * patterns are still tried one by one, through an
-- index of their own. The (publisher, pattern) index also serves what the old one on the
-- publisher alone did (the topics list, the lifecycle events' own subscriptions). An event on a
-- shared topic reads every tenant's shared: subscriptions the same way: the exact ones through
-- tasks_shared_subscriptions (0004), the * ones through an index of their own.
CREATE INDEX tasks_event_patterns ON tasks (created_by, schedule_expr)
    WHERE schedule_kind = 'event' AND status = 'active';
CREATE INDEX tasks_event_wildcards ON tasks (created_by)
    WHERE schedule_kind = 'event' AND status = 'active' AND schedule_expr LIKE '%*%';
CREATE INDEX tasks_shared_wildcards ON tasks (created_by)
    WHERE schedule_kind = 'event' AND status = 'active' AND schedule_expr LIKE 'shared:%'
      AND schedule_expr LIKE '%*%';
DROP INDEX tasks_event_subscriptions;
