-- What each URL source of a knowledge base answered last (issue 20): its
-- validators (ETag, Last-Modified) for the next conditional GET, and when
-- it was fetched, so that a restarted or another replica refreshes on the
-- source's interval and re-downloads nothing that did not change.
CREATE TABLE knowledge_fetches (
    knowledge_id  TEXT NOT NULL,
    url           TEXT NOT NULL,
    etag          TEXT NOT NULL DEFAULT '',
    last_modified TEXT NOT NULL DEFAULT '',
    fetched_at    TEXT NOT NULL,
    PRIMARY KEY (knowledge_id, url)
) STRICT;
