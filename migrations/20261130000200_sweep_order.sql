-- Scheduled sweeps read their work across tenants, oldest first, in keyset
-- pages, so that neither the tenant count nor PostgREST's max-rows decides
-- which work is done. Work that cannot progress is moved to the back by
-- recording the attempt.

-- DVLA refresh: when the sweep last tried a vehicle, whatever the outcome (a
-- failed lookup or a row that cannot be saved is not retried first again).
alter table public.vehicles add column if not exists dvla_attempted_at timestamptz;
-- The sweep's order: the later of the last check and the last attempt;
-- -infinity for a vehicle never tried, so that it sorts first and the keyset
-- columns are never null.
alter table public.vehicles add column if not exists dvla_swept_at timestamptz
  generated always as (coalesce(greatest(dvla_checked_at, dvla_attempted_at), '-infinity'::timestamptz)) stored;
create index if not exists vehicles_dvla_swept_idx
  on public.vehicles (dvla_swept_at, id) where archived_at is null;
-- Replaced by vehicles_dvla_swept_idx.
drop index if exists public.vehicles_dvla_checked_idx;

-- Credas poll: when the poll last tried a check it could not settle (no
-- Credas reference, unconfirmed creation, a failed read or write). Writing it
-- also moves updated_at, the poll's order, so the check goes to the back.
alter table public.identity_checks add column if not exists poll_attempted_at timestamptz;
create index if not exists identity_checks_poll_idx
  on public.identity_checks (updated_at, id) where status in ('invited', 'pending', 'needs_reconcile') and archived_at is null;
drop index if exists public.identity_checks_open_idx;

-- reset-stuck pages stuck jobs by (age, id).
create index if not exists pcn_jobs_processing_page_idx on public.pcn_jobs (claimed_at, id) where status = 'processing';
create index if not exists pcn_jobs_queued_page_idx on public.pcn_jobs (updated_at, id) where status = 'queued';
drop index if exists public.pcn_jobs_processing_idx;
drop index if exists public.pcn_jobs_queued_idx;
