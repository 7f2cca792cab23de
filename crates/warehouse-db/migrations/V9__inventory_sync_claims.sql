-- Stock-level sync, second pass (issue 17 review).
--
-- `claim_token`: the claim a sync loop holds on a row. A loop records its push (or failure,
-- or release) only while its token is still the row's: a claim that lapsed mid-batch and was
-- taken by another replica cannot mark the row clean; the late loop marks it dirty instead,
-- so the newest level is pushed again.
--
-- `last_push_sent_at`: when the last push was sent. A webhook received before it tells of an
-- older state (an echo of an earlier push, a dashboard edit we already overwrote): it is not
-- recorded as Webflow's level, and is no drift.
--
-- `webflow_from_push`: `webflow_level` is the answer to our own PATCH (not a webhook's word).
-- Only such a level lets the loop skip a push as already in step.
ALTER TABLE inventory_sync
    ADD COLUMN claim_token       UUID,
    ADD COLUMN last_push_sent_at TIMESTAMPTZ,
    ADD COLUMN webflow_from_push BOOLEAN NOT NULL DEFAULT false;
