-- Nothing reads a trace's root span id or its start as text: lists, filters
-- and the API use start_ns, and the root span is among the spans. Both were
-- written for every trace on the run path.
ALTER TABLE traces DROP COLUMN root_span_id;
ALTER TABLE traces DROP COLUMN start_time;
