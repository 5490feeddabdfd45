-- Exactly-once writes: fenced PCN job claims, violations unique among live
-- rows, and the generation a document's object was verified at.

-- Each claim of a job gets a fresh token; finishing or releasing the job is
-- conditional on it, so a stale delivery (one whose claim was taken back by
-- reset-stuck and given to a newer delivery) cannot finish or re-queue it.
alter table public.pcn_jobs add column if not exists claim_token uuid;

-- A notice is unique among the tenant's live violations only: after a
-- violation is deleted (archived), scanning its notice again records a new,
-- visible violation instead of pointing at the archived one.
alter table public.violations drop constraint if exists violations_tenant_id_issuing_authority_pcn_number_key;
create unique index if not exists violations_live_notice_key
  on public.violations (tenant_id, issuing_authority, pcn_number) where archived_at is null;

-- The object generation /complete verified; downloads and scans read exactly
-- that generation, so bytes replaced after verification are never served.
alter table public.documents add column if not exists object_generation bigint
  check (object_generation is null or object_generation > 0);
