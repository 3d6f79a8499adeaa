-- Reserved for the triggers of issue 16 (branch i16-triggers), merged
-- separately; this placeholder keeps the versions consecutive on this branch.
-- On merge, take the triggers branch's file.
SELECT 1;
