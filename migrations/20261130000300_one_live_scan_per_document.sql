-- One scan per document: at most one queued or processing job per document,
-- so that two concurrent scans of it cannot both reach Claude. Done jobs are
-- found by the gateway before it inserts; needs_attention jobs do not count
-- (a new scan may start, or the old job be retried, not both).

-- Earlier duplicates (from before this rule) keep the oldest live job; the
-- others are set aside with a reason, not deleted.
with ranked as (
  select id, row_number() over (partition by tenant_id, document_id order by created_at, id) as n
  from public.pcn_jobs
  where status in ('queued', 'processing')
)
update public.pcn_jobs j
   set status = 'needs_attention', reason = 'duplicate_scan', finished_at = now()
  from ranked
 where j.id = ranked.id and ranked.n > 1;

create unique index if not exists pcn_jobs_one_live_per_document
  on public.pcn_jobs (tenant_id, document_id)
  where status in ('queued', 'processing');
