-- Reserved for another part of issue 20, which lands its own 0027; this
-- file keeps the numbers consecutive until then and is deleted at that
-- merge. It changes nothing.
SELECT 1;
