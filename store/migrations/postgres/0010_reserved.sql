-- Reserved for the job engine's migration (issue 15), which its branch adds
-- as 0010: the versions must stay consecutive (TestMigrationsMatchAcrossDialects).
-- Replace this file with that one when the branches merge.
SELECT 1;
