-- Reserved for a migration of issue 18 built alongside (session summaries);
-- keeps versions consecutive on this branch. Replace it when merging.
SELECT 1;
