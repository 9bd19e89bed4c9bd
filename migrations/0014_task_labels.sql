-- Task labels: a small string-to-string map an agent files its tasks under (an assistant
-- serving many people labels each person's tasks), filtered with GET /tasks?label=key:value.
-- The API bounds them (api/schemas.py: at most 16, keys 1-63 characters, values up to 256);
-- the CHECKs keep the column an object of strings whatever writes it.
ALTER TABLE tasks ADD COLUMN labels jsonb NOT NULL DEFAULT '{}'::jsonb
    CONSTRAINT tasks_labels_object CHECK (jsonb_typeof(labels) = 'object')
    CONSTRAINT tasks_labels_strings
        CHECK (NOT jsonb_path_exists(labels, '$.* ? (@.type() != "string")'));

-- The label filter is containment (labels @> '{"user": "ana"}'), which jsonb_path_ops serves.
CREATE INDEX tasks_labels ON tasks USING gin (labels jsonb_path_ops);
