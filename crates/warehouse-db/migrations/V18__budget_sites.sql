-- The sites each Webflow rate budget paces (issue 24). A budget's key is a hash of its API
-- token, so nothing tied it to a store: the console could show an operator limited to some
-- stores no budget at all. The gateway writes the sites sharing the token whenever it sets the
-- budget up (at start and on every change of the stores); a reconciliation share lists the
-- same sites as its budget.
ALTER TABLE rate_budgets ADD COLUMN site_ids TEXT[] NOT NULL DEFAULT '{}';
